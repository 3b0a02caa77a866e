//! The hashing itself: Argon2id on a reused working area, bcrypt for imported hashes, and the
//! bounds a stored hash must keep before any of it runs.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, Zeroizing};

use super::{
    PasswordError, Verdict, ITERATIONS, MAX_BCRYPT_COST, MAX_ITERATIONS, MAX_MEMORY_KIB,
    MEMORY_KIB, PARALLELISM,
};

fn current_params() -> Params {
    Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap_or_default()
}

/// One thread's Argon2 working memory, kept from one hash to the next: as large as the
/// current parameters need (19 MiB), or as the strongest stored hash this thread has checked
/// (at most [`MAX_MEMORY_KIB`]). It is wiped after every use: the first blocks of each lane are
/// computed straight from the password and salt, and would let whoever reads the process's
/// memory test guesses without the memory-hard work.
#[derive(Default)]
pub struct Workspace {
    blocks: Vec<Block>,
}

impl Workspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `run` on the first `count` blocks, growing the area (never shrinking it) when it
    /// is smaller, and wipes them afterwards.
    fn with_blocks<T>(&mut self, count: usize, run: impl FnOnce(&mut [Block]) -> T) -> T {
        let size = count.max(current_params().block_count());
        if self.blocks.len() < size {
            self.blocks.resize(size, Block::default());
        }
        let used = &mut self.blocks[..count];
        let result = run(used);
        used.iter_mut().for_each(Zeroize::zeroize);
        result
    }

    /// Hashes with Argon2id at the current parameters, as a PHC string.
    pub fn hash(&mut self, password: &str) -> Result<String, PasswordError> {
        let failed = |err: &dyn std::fmt::Display| PasswordError::Hashing(err.to_string());
        let params = current_params();
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
        let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        self.with_blocks(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                &mut *out,
                blocks,
            )
        })
        .map_err(|e| failed(&e))?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&*out).map_err(|e| failed(&e))?),
        };
        Ok(hash.to_string())
    }

    /// Checks `password` against a PHC Argon2 string or a bcrypt `$2a$/$2b$/$2y$` hash.
    pub fn verify(&mut self, password: &str, stored: &str) -> Verdict {
        if is_bcrypt(stored) {
            if let Err(refusal) = check_bcrypt_cost(stored) {
                // The hash itself is not logged: it is a credential.
                tracing::warn!(%refusal, "a stored password hash is refused unrun");
                return Verdict::Invalid;
            }
            return match bcrypt::verify(password, stored) {
                Ok(true) => Verdict::Valid {
                    rehash: self.hash(password).ok(),
                },
                _ => Verdict::Invalid,
            };
        }
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Verdict::Invalid;
        };
        if !self.argon2_matches(password.as_bytes(), &parsed) {
            return Verdict::Invalid;
        }
        let rehash = needs_rehash(&parsed)
            .then(|| self.hash(password).ok())
            .flatten();
        Verdict::Valid { rehash }
    }

    /// `PasswordVerifier::verify_password` on this workspace's memory: the same parameters,
    /// salt and output length as the stored hash, compared in constant time.
    fn argon2_matches(&mut self, password: &[u8], parsed: &PasswordHash<'_>) -> bool {
        let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
            Algorithm::try_from(parsed.algorithm),
            Params::try_from(parsed),
            parsed.hash,
            parsed.salt,
        ) else {
            return false;
        };
        let Ok(version) = parsed.version.map_or(Ok(Version::V0x13), Version::try_from) else {
            return false;
        };
        if params.m_cost() > MAX_MEMORY_KIB || params.t_cost() > MAX_ITERATIONS {
            tracing::warn!(
                m_cost = params.m_cost(),
                t_cost = params.t_cost(),
                "a stored password hash asks for more memory or passes than allowed; refused"
            );
            return false;
        }
        let mut salt_bytes = [0u8; 64];
        let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let expected = expected.as_bytes();
        let mut out = Zeroizing::new([0u8; Output::MAX_LENGTH]);
        let Some(out) = out.get_mut(..expected.len()) else {
            return false;
        };
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let computed = self.with_blocks(params.block_count(), |blocks| {
            argon2.hash_password_into_with_memory(password, salt_bytes, &mut *out, blocks)
        });
        let matches = computed.is_ok() && bool::from(out.ct_eq(expected));
        out.zeroize();
        matches
    }
}

/// Hashes with Argon2id at the current parameters, in memory of its own. Blocking: for the CLI
/// and tests; the server hashes through [`Passwords`](super::Passwords).
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    Workspace::new().hash(password)
}

/// [`Workspace::verify`] in memory of its own. Blocking: call on a blocking thread.
pub fn verify_blocking(password: &str, stored: &str) -> Verdict {
    Workspace::new().verify(password, stored)
}

/// Why a stored hash is refused without being run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashRefusal {
    #[error("it is neither a bcrypt ($2b$) nor an Argon2 hash")]
    UnknownScheme,
    #[error("its bcrypt cost is not two digits")]
    UnreadableBcryptCost,
    #[error("its bcrypt cost {0} is above {MAX_BCRYPT_COST}")]
    BcryptCostTooHigh(u32),
    #[error("it is not a readable Argon2 hash")]
    UnreadableArgon2,
    #[error("it asks for {memory_kib} KiB and {passes} passes, above {MAX_MEMORY_KIB} KiB or {MAX_ITERATIONS} passes")]
    Argon2TooCostly { memory_kib: u32, passes: u32 },
}

/// Whether a hash brought from elsewhere (`auth-server user import`) would be checked at login:
/// a bcrypt hash of cost at most [`MAX_BCRYPT_COST`], or an Argon2 hash within
/// [`MAX_MEMORY_KIB`] and [`MAX_ITERATIONS`].
pub fn check_stored_hash(stored: &str) -> Result<(), HashRefusal> {
    if is_bcrypt(stored) {
        return check_bcrypt_cost(stored);
    }
    if !stored.starts_with("$argon2") {
        return Err(HashRefusal::UnknownScheme);
    }
    let params = PasswordHash::new(stored)
        .ok()
        .and_then(|parsed| Params::try_from(&parsed).ok())
        .ok_or(HashRefusal::UnreadableArgon2)?;
    if params.m_cost() > MAX_MEMORY_KIB || params.t_cost() > MAX_ITERATIONS {
        return Err(HashRefusal::Argon2TooCostly {
            memory_kib: params.m_cost(),
            passes: params.t_cost(),
        });
    }
    Ok(())
}

/// The cost of a bcrypt hash, `$2b$NN$…`, within [`MAX_BCRYPT_COST`].
fn check_bcrypt_cost(stored: &str) -> Result<(), HashRefusal> {
    let cost = stored
        .get(4..7)
        .and_then(|field| field.strip_suffix('$'))
        .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u32>().ok())
        .ok_or(HashRefusal::UnreadableBcryptCost)?;
    if cost > MAX_BCRYPT_COST {
        return Err(HashRefusal::BcryptCostTooHigh(cost));
    }
    Ok(())
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

fn needs_rehash(parsed: &PasswordHash<'_>) -> bool {
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return true;
    }
    let Ok(params) = Params::try_from(parsed) else {
        return true;
    };
    params.m_cost() < MEMORY_KIB || params.t_cost() < ITERATIONS || params.p_cost() < PARALLELISM
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
    use std::time::Instant;

    #[test]
    fn new_hashes_are_argon2id_at_owasp_minimum() {
        let hash = hash_blocking("correct horse").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert_eq!(
            verify_blocking("correct horse", &hash),
            Verdict::Valid { rehash: None }
        );
        assert_eq!(verify_blocking("wrong", &hash), Verdict::Invalid);
    }

    #[test]
    fn weaker_argon2_hashes_are_upgraded_on_a_good_login() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = weak.hash_password(b"pw", &salt).unwrap().to_string();
        let Verdict::Valid {
            rehash: Some(new_hash),
        } = verify_blocking("pw", &hash)
        else {
            panic!("expected an upgrade");
        };
        assert!(new_hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[test]
    fn passlib_bcrypt_hashes_verify_and_are_replaced() {
        let hash = bcrypt::hash("secret", 4)
            .unwrap()
            .replacen("$2y$", "$2b$", 1);
        let Verdict::Valid {
            rehash: Some(new_hash),
        } = verify_blocking("secret", &hash)
        else {
            panic!("expected a valid bcrypt login with an upgrade");
        };
        assert!(new_hash.starts_with("$argon2id$"));
        assert_eq!(verify_blocking("wrong", &hash), Verdict::Invalid);
    }

    #[test]
    fn a_bcrypt_hash_above_the_cost_bound_is_refused_unrun() {
        // Cost 14 runs for about a second here, so an answer well within that was never run.
        let tail = "EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";
        for stored in [
            format!("$2b$14${tail}"),
            format!("$2a$15${tail}"),
            format!("$2y$31${tail}"),
            format!("$2b$1x${tail}"),
            format!("$2b$1{tail}"),
        ] {
            let started = Instant::now();
            assert_eq!(verify_blocking("secret", &stored), Verdict::Invalid);
            assert!(
                started.elapsed() < std::time::Duration::from_millis(200),
                "{stored}: took {:?}",
                started.elapsed()
            );
        }
    }

    #[test]
    fn stored_hashes_are_checked_against_the_same_bounds_as_at_login() {
        let tail = "EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";
        assert_eq!(check_stored_hash(&format!("$2b$12${tail}")), Ok(()));
        assert_eq!(check_stored_hash(&format!("$2b$13${tail}")), Ok(()));
        assert_eq!(
            check_stored_hash(&format!("$2b$14${tail}")),
            Err(HashRefusal::BcryptCostTooHigh(14))
        );
        assert_eq!(
            check_stored_hash(&format!("$2b$31${tail}")),
            Err(HashRefusal::BcryptCostTooHigh(31))
        );
        assert_eq!(
            check_stored_hash("$2b$+1$x"),
            Err(HashRefusal::UnreadableBcryptCost)
        );
        assert_eq!(
            check_stored_hash("fakehashedsecret"),
            Err(HashRefusal::UnknownScheme)
        );
        assert_eq!(
            check_stored_hash("$argon2id$v=19$m=1"),
            Err(HashRefusal::UnreadableArgon2)
        );
        assert_eq!(check_stored_hash(&hash_blocking("pw").unwrap()), Ok(()));
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let costly = format!(
            "$argon2id$v=19$m={},t=2,p=1${}$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            MAX_MEMORY_KIB + 1,
            salt.as_str()
        );
        assert_eq!(
            check_stored_hash(&costly),
            Err(HashRefusal::Argon2TooCostly {
                memory_kib: MAX_MEMORY_KIB + 1,
                passes: 2
            })
        );
    }

    #[test]
    fn garbage_hashes_are_invalid_not_errors() {
        assert_eq!(verify_blocking("x", ""), Verdict::Invalid);
        assert_eq!(verify_blocking("x", "$2b$xx"), Verdict::Invalid);
        assert_eq!(verify_blocking("x", "$argon2id$v=19$m=1"), Verdict::Invalid);
    }

    #[test]
    fn a_workspace_and_the_argon2_crate_agree_both_ways() {
        let mut workspace = Workspace::new();
        let ours = workspace.hash("correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            workspace.verify("battery staple", &theirs),
            Verdict::Valid { rehash: None }
        );
        assert_eq!(
            workspace.verify("battery stapler", &theirs),
            Verdict::Invalid
        );
    }

    #[test]
    fn one_workspace_reused_gives_each_check_its_own_answer() {
        let mut workspace = Workspace::new();
        let a = hash_blocking("alpha").unwrap();
        let b = hash_blocking("bravo").unwrap();
        for _ in 0..2 {
            assert_eq!(
                workspace.verify("alpha", &a),
                Verdict::Valid { rehash: None }
            );
            assert_eq!(workspace.verify("alpha", &b), Verdict::Invalid);
            assert_eq!(
                workspace.verify("bravo", &b),
                Verdict::Valid { rehash: None }
            );
            assert_eq!(workspace.verify("bravo", &a), Verdict::Invalid);
        }
        assert_eq!(
            workspace.blocks.len(),
            current_params().block_count(),
            "the working memory is allocated once, at the current parameters"
        );
    }

    #[test]
    fn stronger_stored_hashes_grow_the_working_area_once() {
        let strong = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(2 * MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap(),
        );
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let hash = strong.hash_password(b"pw", &salt).unwrap().to_string();
        let mut workspace = Workspace::new();
        assert_eq!(
            workspace.verify("pw", &hash),
            Verdict::Valid { rehash: None }
        );
        assert_eq!(
            workspace.blocks.len(),
            2 * current_params().block_count(),
            "the area grows to the strongest hash checked, once"
        );
        assert_eq!(
            workspace.verify("pw", &hash),
            Verdict::Valid { rehash: None }
        );
        assert_eq!(workspace.blocks.len(), 2 * current_params().block_count());
    }

    #[test]
    fn the_working_area_is_wiped_after_every_check() {
        let mut workspace = Workspace::new();
        let hash = workspace.hash("correct horse").unwrap();
        assert_eq!(
            workspace.verify("correct horse", &hash),
            Verdict::Valid { rehash: None }
        );
        assert!(!workspace.blocks.is_empty());
        assert!(
            workspace
                .blocks
                .iter()
                .all(|block| block.as_ref().iter().all(|&word| word == 0)),
            "a block still holds state derived from the password"
        );
    }

    #[test]
    fn a_stored_hash_asking_for_too_much_memory_or_too_many_passes_is_refused_unrun() {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        for (m, t) in [(MAX_MEMORY_KIB + 1, 1), (MEMORY_KIB, MAX_ITERATIONS + 1)] {
            let hash = format!(
                "$argon2id$v=19$m={m},t={t},p=1${}$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                salt.as_str()
            );
            assert!(PasswordHash::new(&hash).is_ok(), "{hash}");
            let mut workspace = Workspace::new();
            assert_eq!(workspace.verify("pw", &hash), Verdict::Invalid);
            assert!(
                workspace.blocks.is_empty(),
                "m={m} t={t}: refused before any memory was taken"
            );
        }
    }
}
