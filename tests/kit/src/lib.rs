//! One kit for everything that tests the servers from outside their code: the store
//! conformance suite, the system tests, the command-line tests, the fuzz targets and the
//! benches. Each used to carry its own copy of these helpers, and the copies drifted; here each
//! job has one module.
//!
//! The kit depends on no crate of the workspace, so that any of them, the verifier library and
//! `auth-server` included, can take it as a dev-dependency without a cycle.
//!
//! A kit helper that cannot do its job panics with a message that says what to do: a test that
//! cannot set up must fail loudly, never skip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a harness fails loudly

pub mod ports;
#[cfg(feature = "servers")]
pub mod process;
#[cfg(feature = "servers")]
pub mod redis;
#[cfg(feature = "servers")]
pub mod redis_cluster;
#[cfg(feature = "servers")]
pub mod redis_sentinel;
pub mod signer;
#[cfg(feature = "servers")]
pub mod tls;

pub use ports::free_port;
pub use signer::{unix_now, TestSigner};
