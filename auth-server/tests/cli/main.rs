//! The command line, run as the built binary against a temporary store and keys directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::path::{Path, PathBuf};
use std::process::Command;

use test_kit::process::{command, run, Run};

mod clients;
mod healthcheck;
mod import;
mod keys;
mod settings;
mod users;

/// The built `auth-server` with none of the caller's settings.
fn auth_server() -> Command {
    command(
        Path::new(env!("CARGO_BIN_EXE_auth-server")),
        &["AUTH_", "RUST_LOG"],
        &[],
    )
}

/// A temporary directory for the store and the keys.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The binary with `args`, on this store and keys directory.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = auth_server();
        command
            .args(args)
            .env(
                "AUTH_STORE",
                format!("sqlite://{}", self.path("auth.db").display()),
            )
            .env("AUTH_KEYS_DIR", self.path("keys"));
        command
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        run(&mut self.command(args), stdin)
    }

    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let run = self.run(args, stdin);
        assert!(run.success(), "{args:?}: {}", run.stderr);
        run.stdout
    }

    /// Fails with exit status 1 and one line on stderr; returns that line.
    fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.run(args, stdin)
            .one_error_line(&format!("{args:?}"))
            .to_owned()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
