//! The keys directory (mode 0700): the secrets every replica must share, each in a file of mode
//! 0600 created on first start (the client-secret key, and the key-encryption key unless it is
//! set), and signing keys brought as PKCS#8 PEM files, which are imported into the store (see
//! `keys::lifecycle`). Nothing writes a private key here any more. A file that others may read
//! is refused rather than used.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use zeroize::Zeroizing;

use super::SigningKey;

const KEY_PREFIX: &str = "signing-key-";
const PEM_LABEL: &str = "PRIVATE KEY";
/// The key of the keyed hash over client secrets.
const CLIENT_SECRET_KEY_FILE: &str = "client-secret.key";

/// A signing key read from a PEM file, with its PKCS#8 bytes for sealing into the store.
pub struct KeyFile {
    pub path: PathBuf,
    pub key: SigningKey,
    pub pkcs8: Zeroizing<Vec<u8>>,
}

/// The signing keys in PEM files, newest (by file name) first; none when the directory does not
/// exist.
pub fn load(dir: &Path) -> anyhow::Result<Vec<KeyFile>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    key_files(dir)?
        .into_iter()
        .map(|path| {
            let (key, pkcs8) =
                read_key(&path).with_context(|| format!("loading {}", path.display()))?;
            Ok(KeyFile { path, key, pkcs8 })
        })
        .collect()
}

/// The key for client-secret hashes, created on first use.
pub fn client_secret_key(dir: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    secret_file(dir, CLIENT_SECRET_KEY_FILE, 32)
}

/// The secret in `dir/name`, of at least `min_len` bytes; created with `min_len` random bytes
/// and mode 0600 on first use.
pub fn secret_file(dir: &Path, name: &str, min_len: usize) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    ensure_dir(dir)?;
    let path = dir.join(name);
    if !path.exists() {
        let mut key = Zeroizing::new(vec![0u8; min_len]);
        aws_lc_rs::rand::fill(&mut key)
            .map_err(|_| anyhow::anyhow!("no random bytes for {}", path.display()))?;
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
    if key.len() < min_len {
        bail!("{} is shorter than {min_len} bytes", path.display());
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

fn read_key(path: &Path) -> anyhow::Result<(SigningKey, Zeroizing<Vec<u8>>)> {
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
    Ok((SigningKey::from_pkcs8(&der)?, der))
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
pub(crate) mod tests {
    use super::*;

    /// Writes `key` as a PEM file of `dir` named for `order`, as an operator would bring one.
    pub(crate) fn write_pem(dir: &Path, order: u32, pkcs8: &[u8]) -> PathBuf {
        ensure_dir(dir).unwrap();
        let pem = pem::encode(&pem::Pem::new(PEM_LABEL, pkcs8.to_vec()));
        let path = dir.join(format!("{KEY_PREFIX}{order:04}.pem"));
        write_private(&path, pem.as_bytes()).unwrap();
        path
    }

    #[test]
    fn secrets_are_created_0600_in_a_0700_directory_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let created = client_secret_key(&keys_dir).unwrap();
        assert_eq!(created.len(), 32);
        let file = keys_dir.join(CLIENT_SECRET_KEY_FILE);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(client_secret_key(&keys_dir).unwrap(), created);
    }

    #[test]
    fn a_world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, pkcs8) = SigningKey::generate().unwrap();
        let file = write_pem(dir.path(), 1, &pkcs8);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(dir.path()).err().unwrap();
        assert!(format!("{err:#}").contains("chmod 600"), "{err:#}");
    }

    #[test]
    fn the_newest_key_file_comes_first_and_keeps_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (older, older_der) = SigningKey::generate().unwrap();
        let (newer, newer_der) = SigningKey::generate().unwrap();
        write_pem(dir.path(), 1, &older_der);
        write_pem(dir.path(), 2, &newer_der);
        let keys = load(dir.path()).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].key.kid(), newer.kid());
        assert_eq!(keys[1].key.kid(), older.kid());
        assert_eq!(keys[1].pkcs8.as_slice(), older_der.as_slice());
        assert!(load(&dir.path().join("absent")).unwrap().is_empty());
    }
}
