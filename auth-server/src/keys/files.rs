//! The keys directory: PKCS#8 PEM files created on first start with mode 0600, in a directory
//! of mode 0700. A key file that others may read is refused rather than used.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use zeroize::Zeroizing;

use super::SigningKey;

const KEY_PREFIX: &str = "signing-key-";
const PEM_LABEL: &str = "PRIVATE KEY";
/// The key of the keyed hash over client secrets.
const CLIENT_SECRET_KEY_FILE: &str = "client-secret.key";

/// Loads the signing keys, newest first, creating the directory and a first key if there are none.
pub fn load_or_create(dir: &Path) -> anyhow::Result<Vec<SigningKey>> {
    ensure_dir(dir)?;
    if key_files(dir)?.is_empty() {
        let path = generate(dir)?;
        tracing::info!(path = %path.display(), "generated a signing key");
    }
    load(dir)
}

/// Loads the signing keys, newest first.
pub fn load(dir: &Path) -> anyhow::Result<Vec<SigningKey>> {
    key_files(dir)?
        .iter()
        .map(|path| read_key(path).with_context(|| format!("loading {}", path.display())))
        .collect()
}

/// Creates a new RSA-2048 key; it becomes the newest and so the one that signs.
pub fn generate(dir: &Path) -> anyhow::Result<PathBuf> {
    ensure_dir(dir)?;
    let key_pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| anyhow::anyhow!("generating an RSA key failed"))?;
    let der = key_pair
        .as_der()
        .map_err(|_| anyhow::anyhow!("encoding the RSA key failed"))?;
    let pem = Zeroizing::new(pem::encode(&pem::Pem::new(
        PEM_LABEL,
        der.as_ref().to_vec(),
    )));
    // Nanoseconds, so that keys made within one second still sort newest first.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let suffix: u32 = rand::random();
    let path = dir.join(format!("{KEY_PREFIX}{nanos:020}-{suffix:08x}.pem"));
    write_private(&path, pem.as_bytes())?;
    Ok(path)
}

/// The key for client-secret hashes, created on first use.
pub fn client_secret_key(dir: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    ensure_dir(dir)?;
    let path = dir.join(CLIENT_SECRET_KEY_FILE);
    if !path.exists() {
        let key: [u8; 32] = rand::random();
        match write_private(&path, &key) {
            Ok(()) => {}
            // Another process (the server or a CLI run) created it first.
            Err(_) if path.exists() => {}
            Err(err) => return Err(err),
        }
    }
    check_private(&path)?;
    let key =
        Zeroizing::new(fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
    if key.len() < 32 {
        bail!("{} is shorter than 32 bytes", path.display());
    }
    Ok(key)
}

fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

/// The key files, newest first.
pub fn key_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with(KEY_PREFIX) && name.ends_with(".pem") {
            files.push(path);
        }
    }
    files.sort();
    files.reverse();
    Ok(files)
}

fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    check_private(path)?;
    let text = Zeroizing::new(fs::read_to_string(path)?);
    let pem = pem::parse(text.as_bytes()).context("not a PEM file")?;
    if pem.tag() != PEM_LABEL {
        bail!(
            "expected a PKCS#8 \"{PEM_LABEL}\" PEM block, found {:?}",
            pem.tag()
        );
    }
    let der = Zeroizing::new(pem.into_contents());
    Ok(SigningKey::from_pkcs8(&der)?)
}

/// Refuses a secret file that anyone but its owner and group may read or write.
fn check_private(path: &Path) -> anyhow::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & 0o007 != 0 {
        bail!(
            "{} is accessible to other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// Writes a new file with mode 0600 from its creation, then moves it into place.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    if path.exists() {
        let _ = fs::remove_file(&tmp);
        bail!("{} already exists", path.display());
    }
    fs::rename(&tmp, path).with_context(|| format!("moving {} into place", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_a_0600_key_and_reloads_it() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let created = load_or_create(&keys_dir).unwrap();
        assert_eq!(created.len(), 1);
        let file = key_files(&keys_dir).unwrap().remove(0);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let again = load_or_create(&keys_dir).unwrap();
        assert_eq!(again[0].kid(), created[0].kid());
    }

    #[test]
    fn a_world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        let file = key_files(dir.path()).unwrap().remove(0);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(dir.path()).err().unwrap();
        assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
    }

    #[test]
    fn the_newest_key_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        generate(dir.path()).unwrap();
        let keys = load(dir.path()).unwrap();
        let files = key_files(dir.path()).unwrap();
        assert_eq!(keys.len(), 2);
        assert!(files[0] > files[1]);
    }
}
