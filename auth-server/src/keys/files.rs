//! The keys directory (mode 0700): the secrets every replica must share, each in a file of mode
//! 0600 created on first start (the client-secret key, and the key-encryption key unless it is
//! set), and signing keys brought as PKCS#8 PEM files, which are imported into the store (see
//! `keys::lifecycle`). Nothing writes a private key here any more. A file that others may read
//! is refused rather than used.
//!
//! Replicas may start at once on an empty shared volume, so a secret file comes into being in
//! one step that fails when the name exists already: written whole under a private temporary
//! name, then hard-linked to its name (`link` never replaces). Every process then reads the one
//! file that won; none can overwrite it after another has read it, which would leave two
//! replicas with two key-encryption keys.

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
        if create_private(&path, &key)? {
            tracing::info!(path = %path.display(), "created a secret file");
        }
        // Otherwise another process (a replica or a CLI run) created it first: use that one.
    }
    check_private(&path)?;
    let key =
        Zeroizing::new(fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
    if key.len() < min_len {
        bail!("{} is shorter than {min_len} bytes", path.display());
    }
    Ok(key)
}

/// Creates the directory with mode 0700 from the start (never readable by others, not even
/// for a moment), with any missing parents; an existing directory is left as it is.
fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
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

/// Creates `path` holding `contents`, mode 0600 from its creation, unless it exists: true when
/// this call created it, false when the name was taken (by another process, perhaps a moment
/// ago). Readers never see the file half-written: it is written under a temporary name of this
/// call's own, then linked to `path`, which fails rather than replace an existing file.
fn create_private(path: &Path, contents: &[u8]) -> anyhow::Result<bool> {
    let mut nonce = [0u8; 8];
    aws_lc_rs::rand::fill(&mut nonce)
        .map_err(|_| anyhow::anyhow!("no random bytes for {}", path.display()))?;
    let suffix: String = nonce.iter().map(|byte| format!("{byte:02x}")).collect();
    let tmp = path.with_extension(format!("tmp-{}-{suffix}", std::process::id()));
    let written = write_new(&tmp, contents);
    let linked = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        // A file system without hard links: create the name itself exclusively (`O_EXCL`),
        // which never replaces either; a reader may then meet it a moment before it is whole,
        // and refuses it as too short rather than use it.
        Err(_) => match write_new(path, contents) {
            Ok(()) => Ok(true),
            Err(_) if path.exists() => Ok(false),
            Err(err) => Err(err),
        },
    });
    let _ = fs::remove_file(&tmp);
    let created = linked?;
    if created {
        // The new name must survive a crash as well as the contents.
        if let Some(dir) = path.parent() {
            fs::File::open(dir).and_then(|dir| dir.sync_all()).ok();
        }
    }
    Ok(created)
}

/// Writes a file that must not exist yet, mode 0600 from its creation, and syncs it; removes
/// it again when writing fails.
fn write_new(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes `key` as a PEM file of `dir` named for `order`, as an operator would bring one.
    pub(crate) fn write_pem(dir: &Path, order: u32, pkcs8: &[u8]) -> PathBuf {
        ensure_dir(dir).unwrap();
        let pem = pem::encode(&pem::Pem::new(PEM_LABEL, pkcs8.to_vec()));
        let path = dir.join(format!("{KEY_PREFIX}{order:04}.pem"));
        assert!(create_private(&path, pem.as_bytes()).unwrap());
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
    fn replicas_racing_on_an_empty_volume_end_with_one_secret() {
        const RACERS: usize = 8;
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let keys_dir = dir.path().join("keys");
            let start = std::sync::Arc::new(std::sync::Barrier::new(RACERS));
            let racers: Vec<_> = (0..RACERS)
                .map(|_| {
                    let (keys_dir, start) = (keys_dir.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        secret_file(&keys_dir, "shared.key", 32).unwrap()
                    })
                })
                .collect();
            let seen: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
            assert!(
                seen.iter().all(|key| *key == seen[0]),
                "round {round}: every racer uses the one key that was created"
            );
            let on_disk = fs::read(keys_dir.join("shared.key")).unwrap();
            assert_eq!(on_disk.as_slice(), seen[0].as_slice(), "round {round}");
            let names: Vec<_> = fs::read_dir(&keys_dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name())
                .collect();
            assert_eq!(
                names,
                ["shared.key"],
                "round {round}: no temporary file left"
            );
        }
    }

    #[test]
    fn an_existing_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taken.key");
        assert!(create_private(&path, b"first").unwrap());
        assert!(!create_private(&path, b"second").unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
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
