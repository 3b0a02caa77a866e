//! The built binaries as an operator runs them: a command run to completion with its input,
//! output and exit status, or a server started on a free port and stopped by a signal. Tests
//! about signals, exit codes, the command line and logs need the process itself; everything
//! else starts the servers' libraries in-process, which is faster.
//!
//! A child never inherits the caller's settings: [`command`] removes the variables under the
//! prefixes it is given, so that a developer's `AUTH_*` shell does not change a test.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;

/// `program` in a directory of `PATH`, if it is there.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Sends signal `name` (`TERM`, `INT`, `STOP`, ...) to process `pid`, and only to it.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
    assert!(
        matches!(status, Ok(status) if status.success()),
        "kill -{name} {pid} failed: {status:?}"
    );
}

/// A command for `binary` without any of the caller's variables whose names start with one of
/// `cleared`, and with `env` set.
pub fn command(binary: &Path, cleared: &[&str], env: &[(String, String)]) -> Command {
    let mut command = Command::new(binary);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if cleared.iter().any(|prefix| key.starts_with(prefix)) {
            command.env_remove(key.as_ref());
        }
    }
    command.envs(env.iter().map(|(key, value)| (key, value)));
    command
}

/// What a finished run printed, and how it ended.
pub struct Run {
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The one line on standard error of a run that failed with exit status 1, the way the
    /// binaries refuse a command or a setting; panics, naming `what`, for anything else.
    pub fn one_error_line(&self, what: &str) -> &str {
        let stderr = &self.stderr;
        assert_eq!(self.code(), Some(1), "{what} should fail: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{what}: one clear line: {stderr}"
        );
        assert!(stderr.starts_with("error: "), "{what}: {stderr}");
        stderr
    }
}

/// Runs `command` to its end with `stdin` as its standard input (closed at once when `None`).
pub fn run(command: &mut Command, stdin: Option<&str>) -> Run {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("starting {command:?}: {err}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        // A command that exits without reading its input closes the pipe: not the test's
        // business, its exit status says what happened.
        let _ = input.write_all(text.as_bytes());
    }
    drop(input);
    let output = child.wait_with_output().expect("waiting for the command");
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `command` with `variable=value` and checks that the binary refuses the setting the way
/// the servers refuse one before they start: exit status 1 and one line on standard error that
/// starts `error: VARIABLE` and contains `says`.
pub fn assert_setting_refused(command: &mut Command, variable: &str, value: &str, says: &str) {
    let what = format!("{variable}={value}");
    let run = run(command.env(variable, value), None);
    let stderr = run.one_error_line(&what);
    assert!(
        stderr.starts_with(&format!("error: {variable}")) && stderr.contains(says),
        "{what}: {stderr}"
    );
}

/// A server process whose stdout and stderr go to a log file; killed if still running when
/// dropped.
pub struct Server {
    child: tokio::process::Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Starts the command `make(addr)` gives for a free `addr` (it must listen there), logging
    /// to `log`, and waits until `ready_path` answers 200. The port may be taken between the
    /// probe and the bind: then the server exits naming the address in use, and another port is
    /// tried. Panics with the log when the server exits otherwise or is not ready in 20 s.
    pub async fn start(
        log: PathBuf,
        ready_path: &str,
        make: impl Fn(SocketAddr) -> Command,
    ) -> Self {
        for _attempt in 0..5 {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            if let Some(server) =
                Self::try_start_on(addr, log.clone(), ready_path, make(addr)).await
            {
                return server;
            }
        }
        panic!("no free port for the server in 5 attempts");
    }

    /// Starts `command`, which must listen on `addr`, logging to `log`, and waits until
    /// `ready_path` answers 200; `None` when the server exits because the address is in use
    /// (for servers that must know each other's address before either starts: pick a port,
    /// start the other with it, then this one on it, and pick again on `None`). Panics with the
    /// log when the server exits otherwise or is not ready in 20 s.
    pub async fn try_start_on(
        addr: SocketAddr,
        log: PathBuf,
        ready_path: &str,
        command: Command,
    ) -> Option<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let file = std::fs::File::create(&log).expect("creating the server log");
        let mut command = tokio::process::Command::from(command);
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("opening the server log"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {command:?}: {err}"));
        let mut server = Self { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = server.child.try_wait().expect("polling the server") {
                let log = server.log_text();
                assert!(
                    log.contains("in use"),
                    "the server exited with {status}:\n{log}"
                );
                return None; // the port was taken meanwhile
            }
            if let Ok(response) = http.get(server.url(ready_path)).send().await {
                if response.status() == 200 {
                    return Some(server);
                }
            }
            assert!(
                Instant::now() < deadline,
                "the server was not ready within 20 s:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What the server has logged so far.
    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Sends `signal` (`TERM`, `INT`) to this process, and only to it.
    pub fn signal(&self, name: &str) {
        signal(self.child.id().expect("the server is running"), name);
    }

    /// Waits for the process to exit, for at most `limit`; panics with the log after that.
    pub async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("waiting for the server"),
            Err(_) => panic!("still running after {limit:?}:\n{}", self.log_text()),
        }
    }
}
