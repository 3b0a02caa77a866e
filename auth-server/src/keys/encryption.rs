//! The key-encryption key (KEK): private signing keys live in the shared store, so that every
//! replica and the CLI can rotate without a writable shared volume, but only sealed under this
//! key. A stolen database or Redis dump holds no usable signing key.
//!
//! The KEK is `AUTH_KEY_ENCRYPTION_KEY` (base64 of 32 bytes) or, when that is unset, the file
//! `key-encryption.key` in `AUTH_KEYS_DIR`, created with mode 0600 on first start. Every process
//! on one store must have the same KEK; one that has another cannot open the keys and says so.
//!
//! A sealed key is `version (1 byte) ‖ nonce (12) ‖ AES-256-GCM(PKCS#8) ‖ tag (16)`, with the kid
//! as associated data, so that a blob copied to another kid's record does not open.

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use zeroize::Zeroizing;

use super::files;

/// The file in `AUTH_KEYS_DIR` that holds the KEK when the setting is unset.
pub const KEK_FILE: &str = "key-encryption.key";

const VERSION: u8 = 1;
const AAD_PREFIX: &[u8] = b"auth-server signing key v1\0";

/// 256 bits that seal the private signing keys in the store.
pub struct KeyEncryptionKey {
    key: LessSafeKey,
    /// The first bytes of SHA-256 of the key, to tell two KEKs apart in messages.
    fingerprint: String,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KekError {
    #[error("the key-encryption key must be 32 bytes, got {0}")]
    WrongLength(usize),
    #[error("the key-encryption key is not base64")]
    NotBase64,
    #[error("sealing a signing key failed")]
    Seal,
    /// The blob was sealed under another KEK, for another kid, or is damaged.
    #[error(
        "signing key {kid} cannot be decrypted: it was sealed under another key-encryption key \
         (this process has {fingerprint}), or the record is damaged"
    )]
    Open { kid: String, fingerprint: String },
}

impl KeyEncryptionKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KekError> {
        if bytes.len() != 32 {
            return Err(KekError::WrongLength(bytes.len()));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KekError::Seal)?;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
        let fingerprint = format!(
            "KEK fingerprint {}",
            digest
                .iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        Ok(Self {
            key: LessSafeKey::new(unbound),
            fingerprint,
        })
    }

    /// Base64 (standard or URL-safe, padded or not) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KekError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or(KekError::NotBase64)?,
        );
        Self::from_bytes(&bytes)
    }

    /// The KEK from the setting when it is given, else from `keys_dir`, created on first use.
    pub fn resolve(setting: Option<&str>, keys_dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        match setting {
            Some(text) => Self::from_base64(text).context("AUTH_KEY_ENCRYPTION_KEY"),
            None => {
                let bytes = files::secret_file(keys_dir, KEK_FILE, 32)?;
                let path = keys_dir.join(KEK_FILE);
                Self::from_bytes(&bytes).with_context(|| format!("reading {}", path.display()))
            }
        }
    }

    /// A short, non-secret name of this KEK for messages.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Seals the PKCS#8 `private_key` of `kid`.
    pub fn seal(&self, kid: &str, private_key: &[u8]) -> Result<Vec<u8>, KekError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| KekError::Seal)?;
        let mut in_out = Zeroizing::new(private_key.to_vec());
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(kid)),
                &mut *in_out,
            )
            .map_err(|_| KekError::Seal)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Opens what [`KeyEncryptionKey::seal`] sealed for `kid`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, KekError> {
        let fail = || KekError::Open {
            kid: kid.to_owned(),
            fingerprint: self.fingerprint.clone(),
        };
        let (&version, rest) = sealed.split_first().ok_or_else(fail)?;
        if version != VERSION {
            return Err(fail());
        }
        let (nonce, ciphertext) = rest.split_at_checked(NONCE_LEN).ok_or_else(fail)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut in_out = Zeroizing::new(ciphertext.to_vec());
        let plaintext_len = self
            .key
            .open_in_place(nonce, Aad::from(associated_data(kid)), &mut in_out)
            .map_err(|_| fail())?
            .len();
        in_out.truncate(plaintext_len);
        Ok(in_out)
    }
}

fn associated_data(kid: &str) -> Vec<u8> {
    let mut aad = AAD_PREFIX.to_vec();
    aad.extend_from_slice(kid.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(byte: u8) -> KeyEncryptionKey {
        KeyEncryptionKey::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_only_under_its_kek_and_for_its_kid() {
        let sealed = kek(1).seal("kid-a", b"pkcs8 bytes").unwrap();
        assert_eq!(
            kek(1).open("kid-a", &sealed).unwrap().as_slice(),
            b"pkcs8 bytes"
        );
        assert!(!sealed.windows(11).any(|w| w == b"pkcs8 bytes"));

        let wrong_kek = kek(2).open("kid-a", &sealed).unwrap_err().to_string();
        assert!(wrong_kek.contains("kid-a"), "{wrong_kek}");
        assert!(
            wrong_kek.contains("another key-encryption key"),
            "{wrong_kek}"
        );
        assert!(
            kek(1).open("kid-b", &sealed).is_err(),
            "the blob is bound to its kid"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(kek(1).open("kid-a", &tampered).is_err());
        assert!(kek(1).open("kid-a", &sealed[..10]).is_err());
        assert!(kek(1).open("kid-a", &[]).is_err());
    }

    #[test]
    fn the_setting_is_base64_of_32_bytes_and_never_printed() {
        let text = STANDARD.encode([7u8; 32]);
        let parsed = KeyEncryptionKey::from_base64(&text).unwrap();
        assert_eq!(format!("{parsed:?}"), "KeyEncryptionKey([redacted])");
        assert!(KeyEncryptionKey::from_base64(&URL_SAFE_NO_PAD.encode([7u8; 32])).is_ok());
        assert!(matches!(
            KeyEncryptionKey::from_base64(&STANDARD.encode([7u8; 16])),
            Err(KekError::WrongLength(16))
        ));
        assert!(matches!(
            KeyEncryptionKey::from_base64("not base64!"),
            Err(KekError::NotBase64)
        ));
    }

    #[test]
    fn replicas_starting_at_once_on_an_empty_volume_get_one_kek() {
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let keys_dir = dir.path().join("keys");
            let start = std::sync::Arc::new(std::sync::Barrier::new(8));
            let replicas: Vec<_> = (0..8)
                .map(|_| {
                    let (keys_dir, start) = (keys_dir.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        KeyEncryptionKey::resolve(None, &keys_dir).unwrap()
                    })
                })
                .collect();
            let keks: Vec<_> = replicas.into_iter().map(|r| r.join().unwrap()).collect();
            let sealed = keks[0].seal("kid", b"secret").unwrap();
            for kek in &keks {
                assert_eq!(kek.fingerprint(), keks[0].fingerprint(), "round {round}");
                assert_eq!(kek.open("kid", &sealed).unwrap().as_slice(), b"secret");
            }
            let again = KeyEncryptionKey::resolve(None, &keys_dir).unwrap();
            assert_eq!(again.fingerprint(), keks[0].fingerprint(), "the file kept");
        }
    }

    #[test]
    fn without_the_setting_the_kek_file_is_created_0600_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let first = KeyEncryptionKey::resolve(None, &keys_dir).unwrap();
        let mode = std::fs::metadata(keys_dir.join(KEK_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = KeyEncryptionKey::resolve(None, &keys_dir).unwrap();
        let sealed = first.seal("kid", b"secret").unwrap();
        assert_eq!(again.open("kid", &sealed).unwrap().as_slice(), b"secret");
        assert_eq!(first.fingerprint(), again.fingerprint());
    }
}
