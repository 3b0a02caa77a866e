//! Password hashing: Argon2id on a fixed set of dedicated threads, with a bounded queue in
//! front of them, so that a flood of logins costs a fixed amount of memory and CPU and other
//! endpoints keep answering. Imported bcrypt hashes verify too and are replaced at the next good
//! login. Stored hashes of either kind that ask for more work than a bound are refused unrun, so
//! that one record cannot hold a worker for minutes or days.
//!
//! Each worker thread owns one Argon2 working area (19 MiB at the current parameters) and reuses
//! it for every check. Allocating it per check, as `Argon2::verify_password` does, let glibc keep
//! a freed 19 MiB block in the arena of every thread that ever hashed: with tokio's blocking pool
//! that was hundreds of MiB after a login flood. Here the memory is `workers × 19 MiB`, set by
//! `AUTH_PASSWORD_WORKERS`, and a check neither allocates nor faults in fresh pages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, Zeroizing};

/// OWASP's minimum for Argon2id and the argon2 crate's default: 19 MiB, two passes, one lane.
pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;

/// Stored hashes that ask for more memory or passes than these are refused rather than
/// computed: a corrupt or hostile record must not make a login allocate gigabytes or hold a
/// worker for minutes. They admit the stronger settings other systems use (passlib 64 MiB,
/// Django 100 MiB, both with 2 or 3 passes); a check at both limits costs about 50 times one at
/// the current parameters.
pub const MAX_MEMORY_KIB: u32 = 128 * 1024;
pub const MAX_ITERATIONS: u32 = 16;

/// The highest bcrypt cost a stored hash may have, for the same reason: each step doubles the
/// work (cost 14 takes about a second here), so the 31 the format allows would hold a worker
/// for more than a day per login. 13 is one step above passlib's default of 12.
pub const MAX_BCRYPT_COST: u32 = 13;

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
/// and tests; the server hashes through [`Passwords`].
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

/// A check waiting for a worker: it runs on the worker's [`Workspace`] and answers through
/// its own channel.
type Job = Box<dyn FnOnce(&mut Workspace) + Send>;

/// What the pool tells whoever keeps its metrics (the server's Prometheus registry), so that
/// hashing depends on no metrics library.
pub trait PoolMetrics: Send + Sync {
    /// A check took (`+1`) or gave back (`-1`) a place in the queue.
    fn queue_depth_changed(&self, delta: i64);
    /// A check waited this long for a worker.
    fn waited(&self, seconds: f64);
}

pub struct Passwords {
    jobs: flume::Sender<Job>,
    pool: Arc<Pool>,
    workers: usize,
    dummy_hash: String,
}

/// What the queue slots of [`Passwords`] share with the jobs that carry them to the workers.
struct Pool {
    /// Waiting plus running checks; bounded by `capacity`.
    in_flight: AtomicUsize,
    capacity: usize,
    metrics: Option<Arc<dyn PoolMetrics>>,
}

impl Passwords {
    /// Starts `workers` threads (each keeps ~19 MiB once it has hashed); `queue` more checks may
    /// wait for one. The threads end when this is dropped.
    pub fn new(
        workers: usize,
        queue: usize,
        metrics: Option<Arc<dyn PoolMetrics>>,
    ) -> Result<Self, PasswordError> {
        let workers = workers.max(1);
        let (jobs, waiting) = flume::unbounded::<Job>();
        for n in 0..workers {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("password-{n}"))
                .spawn(move || {
                    let mut workspace = Workspace::new();
                    while let Ok(job) = waiting.recv() {
                        // A panicking check fails its own request (its answer channel is
                        // dropped) but must not take a worker away from all later ones.
                        let run = std::panic::AssertUnwindSafe(|| job(&mut workspace));
                        if std::panic::catch_unwind(run).is_err() {
                            tracing::error!("a password check panicked; the worker goes on");
                            workspace = Workspace::new();
                        }
                    }
                })
                .map_err(|err| PasswordError::Hashing(format!("starting a worker: {err}")))?;
        }
        let dummy_hash = hash_blocking(&crate::tokens::random_token(24))?;
        Ok(Self {
            jobs,
            pool: Arc::new(Pool {
                in_flight: AtomicUsize::new(0),
                capacity: workers + queue,
                metrics,
            }),
            workers,
            dummy_hash,
        })
    }

    /// How many threads hash.
    pub fn workers(&self) -> usize {
        self.workers
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
            .run(move |workspace| workspace.verify(&password, &stored))
            .await?;
        Ok(if known { verdict } else { Verdict::Invalid })
    }

    pub async fn hash(&self, password: Zeroizing<String>) -> Result<String, PasswordError> {
        self.run(move |workspace| workspace.hash(&password)).await?
    }

    /// Queues `job` for a worker, or answers [`PasswordError::Busy`] at once when the queue is
    /// full. The queue slot travels with the job and is given back when a worker is done with
    /// it, so a cancelled request still counts until its job has left the queue; a worker skips
    /// the job of a request that is gone.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Workspace) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let slot = QueueSlot::take(&self.pool)?;
        let queued_at = Instant::now();
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |workspace| {
            if answer.is_closed() {
                return;
            }
            if let Some(metrics) = &slot.pool.metrics {
                metrics.waited(queued_at.elapsed().as_secs_f64());
            }
            let result = work(workspace);
            // Free before answering: whoever gets the answer finds the slot free.
            drop(slot);
            let _ = answer.send(result);
        });
        self.jobs
            .send(job)
            .map_err(|_| PasswordError::Hashing("the password workers have stopped".into()))?;
        answered
            .await
            .map_err(|_| PasswordError::Hashing("a password worker failed".into()))
    }
}

/// One place in the bounded queue, given back on drop.
struct QueueSlot {
    pool: Arc<Pool>,
}

impl QueueSlot {
    fn take(pool: &Arc<Pool>) -> Result<Self, PasswordError> {
        let taken = pool
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < pool.capacity).then_some(n + 1)
            });
        match taken {
            Ok(_) => {
                if let Some(metrics) = &pool.metrics {
                    metrics.queue_depth_changed(1);
                }
                Ok(Self { pool: pool.clone() })
            }
            Err(_) => Err(PasswordError::Busy),
        }
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.pool.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(metrics) = &self.pool.metrics {
            metrics.queue_depth_changed(-1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

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

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once() {
        let passwords = Arc::new(Passwords::new(1, 0, None).unwrap());
        let slow = {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .run(|_| std::thread::sleep(std::time::Duration::from_millis(300)))
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

    #[tokio::test]
    async fn checks_run_on_the_configured_number_of_dedicated_threads() {
        let passwords = Arc::new(Passwords::new(2, 16, None).unwrap());
        let runs = (0..12).map(|_| {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .run(|_| {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        std::thread::current().name().map(str::to_owned)
                    })
                    .await
            })
        });
        let mut names = std::collections::BTreeSet::new();
        for run in runs {
            names.insert(run.await.unwrap().unwrap());
        }
        let expected: std::collections::BTreeSet<_> = ["password-0", "password-1"]
            .into_iter()
            .map(|name| Some(name.to_owned()))
            .collect();
        assert_eq!(names, expected);
    }

    #[tokio::test]
    async fn a_cancelled_check_holds_its_slot_until_a_worker_has_dropped_it() {
        let passwords = Arc::new(Passwords::new(1, 1, None).unwrap());
        let (started, running) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = {
            let passwords = passwords.clone();
            tokio::spawn(async move {
                passwords
                    .run(move |_| {
                        started.send(()).unwrap();
                        released.recv().unwrap();
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || running.recv().unwrap())
            .await
            .unwrap();
        // Queued behind the busy worker, then given up by its caller.
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = {
            let ran = ran.clone();
            tokio::time::timeout(
                std::time::Duration::from_millis(50),
                passwords.run(move |_| ran.store(true, Ordering::SeqCst)),
            )
            .await
        };
        assert!(queued.is_err(), "the queued check cannot have finished");
        assert!(matches!(
            passwords.run(|_| ()).await,
            Err(PasswordError::Busy)
        ));
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // The worker then takes the cancelled job, skips it and gives its slot back.
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match passwords.run(|_| ()).await {
                Ok(()) => break,
                Err(PasswordError::Busy) if Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(err) => panic!("the cancelled job kept its slot: {err}"),
            }
        }
        assert!(
            !ran.load(Ordering::SeqCst),
            "the job of a cancelled request must not run"
        );
    }

    #[tokio::test]
    async fn a_panicking_check_fails_alone_and_the_worker_goes_on() {
        let passwords = Passwords::new(1, 4, None).unwrap();
        let failed = passwords.run(|_| panic!("a bug in a check")).await;
        assert!(matches!(failed, Err(PasswordError::Hashing(_))));
        assert_eq!(passwords.run(|_| 7).await.unwrap(), 7);
    }
}
