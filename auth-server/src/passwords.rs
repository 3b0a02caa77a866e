//! Password hashing: Argon2id on a bounded pool off the async workers, with a bounded queue in
//! front of it, so a flood of logins costs a fixed amount of memory and CPU and other endpoints
//! keep answering. Imported bcrypt hashes verify too and are replaced at the next good login.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// OWASP's minimum for Argon2id and the argon2 crate's default: 19 MiB, two passes, one lane.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The queue is full: answer 503 at once rather than queue without end.
    #[error("too many password checks are waiting")]
    Busy,
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// What a check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid {
        /// A fresh Argon2id hash to store when the old one was weaker or bcrypt.
        rehash: Option<String>,
    },
    Invalid,
}

pub struct Passwords {
    workers: Arc<Semaphore>,
    /// Waiting plus running checks; bounded by `capacity`.
    in_flight: AtomicUsize,
    capacity: usize,
    dummy_hash: String,
    metrics: Option<crate::http::metrics::Metrics>,
}

fn argon2() -> Argon2<'static> {
    match Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None) {
        Ok(params) => Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
        Err(_) => Argon2::default(),
    }
}

/// Hashes with Argon2id at the current parameters. Blocking: call on a blocking thread.
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| PasswordError::Hashing(err.to_string()))
}

/// Checks `password` against a PHC Argon2 string or a bcrypt `$2a$/$2b$/$2y$` hash.
/// Blocking: call on a blocking thread.
pub fn verify_blocking(password: &str, stored: &str) -> Verdict {
    if is_bcrypt(stored) {
        return match bcrypt::verify(password, stored) {
            Ok(true) => Verdict::Valid {
                rehash: hash_blocking(password).ok(),
            },
            _ => Verdict::Invalid,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verdict::Invalid;
    };
    if argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_err()
    {
        return Verdict::Invalid;
    }
    let rehash = needs_rehash(&parsed)
        .then(|| hash_blocking(password).ok())
        .flatten();
    Verdict::Valid { rehash }
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| stored.starts_with(prefix))
}

fn needs_rehash(parsed: &PasswordHash<'_>) -> bool {
    if parsed.algorithm.as_str() != "argon2id" {
        return true;
    }
    let Ok(params) = Params::try_from(parsed) else {
        return true;
    };
    params.m_cost() < MEMORY_KIB || params.t_cost() < ITERATIONS || params.p_cost() < PARALLELISM
}

impl Passwords {
    /// `workers` hashes run at once (each holds ~19 MiB); `queue` more may wait for one.
    pub fn new(
        workers: usize,
        queue: usize,
        metrics: Option<crate::http::metrics::Metrics>,
    ) -> Result<Self, PasswordError> {
        let dummy_hash = hash_blocking(&crate::tokens::random_token(24))?;
        Ok(Self {
            workers: Arc::new(Semaphore::new(workers.max(1))),
            in_flight: AtomicUsize::new(0),
            capacity: workers.max(1) + queue,
            dummy_hash,
            metrics,
        })
    }

    /// Verifies against `stored`, or against a dummy hash when there is no such user, so that
    /// the answer takes as long either way.
    pub async fn verify(
        &self,
        password: Zeroizing<String>,
        stored: Option<String>,
    ) -> Result<Verdict, PasswordError> {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        let verdict = self
            .run(move || verify_blocking(&password, &stored))
            .await?;
        Ok(if known { verdict } else { Verdict::Invalid })
    }

    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, PasswordError> {
        self.run(move || hash_blocking(&password)).await?
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _slot = QueueSlot::take(self)?;
        let queued_at = Instant::now();
        let permit = self
            .workers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Hashing("worker pool closed".into()))?;
        if let Some(metrics) = &self.metrics {
            metrics
                .password_wait_seconds
                .observe(queued_at.elapsed().as_secs_f64());
        }
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|err| PasswordError::Hashing(err.to_string()))
    }
}

/// One place in the bounded queue, given back on drop (also when the request is cancelled).
struct QueueSlot<'a> {
    passwords: &'a Passwords,
}

impl<'a> QueueSlot<'a> {
    fn take(passwords: &'a Passwords) -> Result<Self, PasswordError> {
        let taken = passwords
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < passwords.capacity).then_some(n + 1)
            });
        match taken {
            Ok(_) => {
                if let Some(metrics) = &passwords.metrics {
                    metrics.password_queue_depth.inc();
                }
                Ok(Self { passwords })
            }
            Err(_) => Err(PasswordError::Busy),
        }
    }
}

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.passwords.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(metrics) = &self.passwords.metrics {
            metrics.password_queue_depth.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn garbage_hashes_are_invalid_not_errors() {
        assert_eq!(verify_blocking("x", ""), Verdict::Invalid);
        assert_eq!(verify_blocking("x", "$2b$xx"), Verdict::Invalid);
        assert_eq!(verify_blocking("x", "$argon2id$v=19$m=1"), Verdict::Invalid);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let passwords = Arc::new(Passwords::new(1, 0, None).unwrap());
        let slow = {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .run(|| std::thread::sleep(std::time::Duration::from_millis(300)))
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let second = passwords.verify(Zeroizing::new("x".into()), None).await;
        assert!(matches!(second, Err(PasswordError::Busy)));
        slow.await.unwrap().unwrap();
        assert!(passwords
            .verify(Zeroizing::new("x".into()), None)
            .await
            .is_ok());
    }
}
