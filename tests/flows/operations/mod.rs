//! Operations (issue 6): Prometheus metrics on both servers, the admin address, request ids,
//! graceful shutdown of the real `auth-server` binary on SIGTERM and Ctrl-C, and logs that
//! never carry a secret.
//!
//! The shutdown and log tests run the built binaries, not the library: signals, the exit status
//! and the log subscriber belong to the process. See `system_tests::binaries` for how they are
//! found.

mod admin;
mod logs;
mod metrics;
mod request_ids;
mod shutdown;

const PASSWORD: &str = "correct horse battery staple 7Q";
const CLIENT_SECRET: &str = "svc secret 0123456789 abcdefghij KLMN";
