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

mod hashing;
mod pool;

pub use hashing::{check_stored_hash, hash_blocking, verify_blocking, HashRefusal, Workspace};
pub use pool::{Passwords, PoolMetrics};

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
