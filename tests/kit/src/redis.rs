//! Redis for tests. Two kinds, because tests need two things of it:
//!
//! - a private `redis-server` that only its test uses ([`RedisServer`]), which the test may
//!   stop, start, pause and resume to show how the servers behave in an outage;
//! - a Redis that any number of tests share ([`shared_redis`]: `REDIS_URL`, else one private
//!   server per test process), each test under a key prefix of its own ([`RedisNamespace`]) so
//!   that tests run in parallel on one server.
//!
//! Each private server runs on a free port with a temporary directory of its own, and stops
//! when its test drops it or when the test process ends however it ends (a supervising shell
//! holds a pipe from this process). A single server comes plain ([`RedisServer::single`]) or
//! speaking TLS only ([`RedisServer::single_tls`], certificates from [`crate::tls::TestPki`]);
//! Sentinel or Cluster setups start several of them with other arguments
//! ([`RedisServer::with_arguments`]; a Cluster in [`crate::redis_cluster`]); a sentinel is one in
//! sentinel mode ([`RedisServer::sentinel`]), which [`crate::redis_sentinel`] puts together with a
//! primary and a replica.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::ports::free_port;
use crate::process::{find_on_path, signal};
pub use crate::tls::ClientCerts;
use crate::tls::{install_crypto_provider, TestPki, TlsFiles};

const HOW_TO_GET_REDIS: &str = "set REDIS_URL to a Redis the tests may use (for example \
    REDIS_URL=redis://127.0.0.1:6379/0), or put redis-server on PATH (for example \
    `apt-get install redis-server`) so that the tests start their own";

/// Runs `redis-server "$@"` and stops it when its standard input, a pipe from this process,
/// reaches end of file: when the test closes it, or when this process exits however it exits.
/// Prints the server's process id first; exits when the server exits.
const SUPERVISOR: &str = r#"
exec 3<&0 </dev/null
redis-server "$@" 3<&- >/dev/null 2>&1 &
server=$!
echo "$server"
( cat <&3 >/dev/null; kill -CONT "$server" 2>/dev/null; kill "$server" 2>/dev/null ) >/dev/null 2>&1 &
exec 3<&-
wait "$server"
"#;

/// What a private server keeps on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing: its data is gone once it stops.
    None,
    /// An append-only file synced on every write, so that what the server acknowledged
    /// survives [`RedisServer::stop`] and [`RedisServer::start`], as on a production Redis
    /// with AOF.
    AppendOnly,
}

/// A `redis-server` on 127.0.0.1 that only its test uses, stopped on drop.
pub struct RedisServer {
    port: u16,
    /// Everything but the port, the bind address and the directory.
    arguments: Vec<String>,
    dir: tempfile::TempDir,
    /// Copies of the certificates a TLS server was started with, in `dir`.
    tls: Option<TlsFiles>,
    /// For a sentinel: its configuration, written to `sentinel.conf` in `dir` at the first start.
    sentinel_config: Option<String>,
    process: Option<ServerProcess>,
}

struct ServerProcess {
    supervisor: Child,
    /// Closing it stops the server.
    stdin: Option<ChildStdin>,
    pid: u32,
    paused: bool,
}

impl RedisServer {
    /// One server on a free port, answering once this returns. The error says what went wrong
    /// and how to get a `redis-server`.
    pub fn single(persistence: Persistence) -> Result<Self, String> {
        let mut arguments = vec!["--save", ""];
        arguments.extend_from_slice(match persistence {
            Persistence::None => &["--appendonly", "no"][..],
            Persistence::AppendOnly => &["--appendonly", "yes", "--appendfsync", "always"],
        });
        let dir = server_dir()?;
        Self::start_new(
            arguments.into_iter().map(str::to_owned).collect(),
            None,
            dir,
        )
    }

    /// One server without persistence that speaks TLS only (`--port 0`, `--tls-port` on a free
    /// port), with the server certificate of `pki` and its CA for client certificates. The
    /// certificates are copied into the server's directory, so `pki` may be dropped.
    pub fn single_tls(pki: &TestPki, clients: ClientCerts) -> Result<Self, String> {
        Self::tls_with_arguments(pki, clients, &[])
    }

    /// As [`RedisServer::single_tls`], with more `arguments` (say, `--replicaof` and
    /// `--tls-replication yes`).
    pub fn tls_with_arguments(
        pki: &TestPki,
        clients: ClientCerts,
        arguments: &[&str],
    ) -> Result<Self, String> {
        let dir = server_dir()?;
        let (tls_arguments, files) = tls_setup(pki, clients, &dir)?;
        let mut all = vec![
            "--save".to_owned(),
            String::new(),
            "--appendonly".to_owned(),
            "no".to_owned(),
        ];
        all.extend(tls_arguments);
        all.extend(arguments.iter().map(|argument| (*argument).to_owned()));
        Self::start_new(all, Some(files), dir)
    }

    /// A sentinel that speaks TLS only, as [`RedisServer::sentinel`] and
    /// [`RedisServer::single_tls`]; it reaches the nodes it watches over TLS too.
    pub fn sentinel_tls(pki: &TestPki, config: &str) -> Result<Self, String> {
        let dir = server_dir()?;
        let (mut arguments, files) = tls_setup(pki, ClientCerts::NotAsked, &dir)?;
        arguments.extend(["--tls-replication".to_owned(), "yes".to_owned()]);
        Self::start_prepared(arguments, Some(files), Some(config.to_owned()), dir)
    }

    /// [`RedisServer::single_tls`], panicking with what went wrong.
    pub fn start_tls(pki: &TestPki, clients: ClientCerts) -> Self {
        Self::single_tls(pki, clients)
            .unwrap_or_else(|problem| panic!("starting a TLS redis-server: {problem}"))
    }

    /// A single server with persistence, for a test that stops Redis (which must never stop
    /// the shared one). Panics, saying how to get one, when it cannot start.
    pub fn start_private() -> Self {
        Self::single(Persistence::AppendOnly).unwrap_or_else(|problem| {
            panic!(
                "this test stops Redis, so it starts its own redis-server (REDIS_URL is not \
                 used): {problem}"
            )
        })
    }

    /// One server with `arguments` (say, `--replicaof` and a password) and no persistence.
    pub fn with_arguments(arguments: &[&str]) -> Result<Self, String> {
        let mut all = vec!["--save", "", "--appendonly", "no"];
        all.extend_from_slice(arguments);
        Self::start_new(
            all.into_iter().map(str::to_owned).collect(),
            None,
            server_dir()?,
        )
    }

    /// A sentinel (`redis-server sentinel.conf --sentinel`) with `config`: the `sentinel …` lines
    /// that name what it monitors. The sentinel rewrites the file as it learns.
    pub fn sentinel(config: &str) -> Result<Self, String> {
        Self::start_prepared(Vec::new(), None, Some(config.to_owned()), server_dir()?)
    }

    fn start_new(
        arguments: Vec<String>,
        tls: Option<TlsFiles>,
        dir: tempfile::TempDir,
    ) -> Result<Self, String> {
        Self::start_prepared(arguments, tls, None, dir)
    }

    fn start_prepared(
        arguments: Vec<String>,
        tls: Option<TlsFiles>,
        sentinel_config: Option<String>,
        mut dir: tempfile::TempDir,
    ) -> Result<Self, String> {
        if find_on_path("redis-server").is_none() {
            return Err(format!("redis-server is not on PATH; {HOW_TO_GET_REDIS}"));
        }
        let mut last_problem = String::new();
        // Another process may take the free port between our probe and the server's bind.
        for _attempt in 0..3 {
            let mut server = Self {
                port: free_port(),
                arguments: arguments.clone(),
                dir,
                tls: tls.clone(),
                sentinel_config: sentinel_config.clone(),
                process: None,
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(problem) => {
                    last_problem = problem;
                    dir = std::mem::replace(
                        &mut server.dir,
                        tempfile::tempdir().map_err(|err| err.to_string())?,
                    );
                }
            }
        }
        Err(last_problem)
    }

    fn launch(&mut self) -> Result<(), String> {
        // A sentinel's configuration file comes first, and must be writable.
        let mut leading = Vec::new();
        if let Some(config) = &self.sentinel_config {
            let file = self.dir.path().join("sentinel.conf");
            if !file.exists() {
                std::fs::write(&file, config)
                    .map_err(|err| format!("writing {}: {err}", file.display()))?;
            }
            leading = vec![file.display().to_string(), "--sentinel".to_owned()];
        }
        let mut supervisor = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("redis-test-supervisor")
            .args(leading)
            .args(self.port_arguments())
            .args(["--bind", "127.0.0.1"])
            .args(&self.arguments)
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("starting redis-server: {err}"))?;
        let stdin = supervisor.stdin.take();
        let mut first_line = String::new();
        if let Some(stdout) = supervisor.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut first_line);
        }
        let Ok(pid) = first_line.trim().parse::<u32>() else {
            drop(stdin);
            let _ = supervisor.wait();
            return Err(format!("redis-server did not start: {first_line:?}"));
        };
        let mut process = ServerProcess {
            supervisor,
            stdin,
            pid,
            paused: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = process.supervisor.try_wait() {
                return Err(format!(
                    "redis-server on port {} exited with {status}",
                    self.port
                ));
            }
            if self.answers_ping() {
                self.process = Some(process);
                return Ok(());
            }
            if Instant::now() > deadline {
                process.end();
                return Err(format!(
                    "redis-server on port {} did not answer within 10 s",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `--port PORT`, or for a TLS server `--port 0 --tls-port PORT`: it speaks TLS only.
    fn port_arguments(&self) -> Vec<String> {
        let port = self.port.to_string();
        match self.tls {
            None => vec!["--port".to_owned(), port],
            Some(_) => vec![
                "--port".to_owned(),
                "0".to_owned(),
                "--tls-port".to_owned(),
                port,
            ],
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/0`, or `rediss://` for a TLS server; with the password of
    /// `--requirepass`, if it was started with one.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let password = self
            .arguments
            .windows(2)
            .find(|pair| pair[0] == "--requirepass")
            .map(|pair| format!(":{}@", pair[1]))
            .unwrap_or_default();
        format!("{scheme}://{password}127.0.0.1:{}/0", self.port)
    }

    /// Whether the server runs (it may be stopped).
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// A client for this server; for a TLS server, one that trusts the test CA and presents
    /// the client certificate.
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        let Some(files) = &self.tls else {
            return redis::Client::open(self.url());
        };
        install_crypto_provider();
        let read = |path: &PathBuf| std::fs::read(path).map_err(redis::RedisError::from);
        redis::Client::build_with_tls(
            self.url(),
            redis::TlsCertificates {
                client_tls: Some(redis::ClientTlsConfig {
                    client_cert: read(&files.client_cert)?,
                    client_key: read(&files.client_key)?,
                }),
                root_cert: Some(read(&files.ca)?),
            },
        )
    }

    /// A synchronous connection that gives up after a second.
    pub fn connect(&self) -> redis::RedisResult<redis::Connection> {
        connect_with(self.client()?)
    }

    /// Whether the server is ready. A TLS server is once its port accepts connections: it
    /// keeps no data to load, and its certificate may be made for a name that a probe from
    /// 127.0.0.1 fails to match, on purpose.
    fn answers_ping(&self) -> bool {
        match self.tls {
            None => pongs(self.connect()),
            Some(_) => std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
                Duration::from_millis(500),
            )
            .is_ok(),
        }
    }

    /// Deletes every key under `prefix` on this server (see [`delete_keys`]).
    pub fn delete_keys(&self, prefix: &str) -> redis::RedisResult<()> {
        delete_keys_on(&mut self.connect()?, prefix)
    }

    /// A fresh key prefix on this server for the test `name`.
    pub fn namespace(&self, name: &str) -> RedisNamespace {
        RedisNamespace::new(self.url(), name)
    }

    /// Stops the server (SIGTERM) and waits until it has exited: its port refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.end();
        }
    }

    /// Starts the server again on the same port, with the data it kept, and waits until it
    /// answers.
    pub fn start(&mut self) {
        assert!(
            self.process.is_none(),
            "redis-server on port {} is running already",
            self.port
        );
        if let Err(problem) = self.launch() {
            panic!("restarting redis-server: {problem}");
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&mut self) {
        let process = self
            .process
            .as_mut()
            .expect("pausing a stopped redis-server");
        signal(process.pid, "STOP");
        process.paused = true;
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&mut self) {
        let process = self
            .process
            .as_mut()
            .expect("resuming a stopped redis-server");
        signal(process.pid, "CONT");
        process.paused = false;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ServerProcess {
    /// Closes the pipe, so that the supervisor stops the server, and waits for both.
    fn end(&mut self) {
        if self.paused {
            signal(self.pid, "CONT");
            self.paused = false;
        }
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.supervisor.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(self.pid, "KILL");
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
    }
}

/// A connection to `url` that gives up after a second, as tests probe servers that may be
/// stopped or paused.
fn connect(url: &str) -> redis::RedisResult<redis::Connection> {
    connect_with(redis::Client::open(url)?)
}

fn connect_with(client: redis::Client) -> redis::RedisResult<redis::Connection> {
    let timeout = Duration::from_secs(1);
    let connection = client.get_connection_with_timeout(Duration::from_millis(500))?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    Ok(connection)
}

/// Whether `url` answers `PING` (a server still loading its data answers an error).
#[cfg(test)]
fn answers_ping(url: &str) -> bool {
    pongs(connect(url))
}

fn pongs(connection: redis::RedisResult<redis::Connection>) -> bool {
    connection
        .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
        .is_ok_and(|pong| pong == "PONG")
}

/// Copies the certificates of `pki` into `dir`: the arguments that make a server use them, and
/// the files a client needs.
fn tls_setup(
    pki: &TestPki,
    clients: ClientCerts,
    dir: &tempfile::TempDir,
) -> Result<(Vec<String>, TlsFiles), String> {
    let copy = |from: PathBuf, name: &str| -> Result<PathBuf, String> {
        let to = dir.path().join(name);
        std::fs::copy(&from, &to).map_err(|err| format!("copying {}: {err}", from.display()))?;
        Ok(to)
    };
    let (cert, key) = (
        copy(pki.server_cert_file(), "server.pem")?,
        copy(pki.server_key_file(), "server.key")?,
    );
    let files = TlsFiles {
        ca: copy(pki.ca_file(), "ca.pem")?,
        client_cert: copy(pki.client_cert_file(), "client.pem")?,
        client_key: copy(pki.client_key_file(), "client.key")?,
    };
    let path = |path: &PathBuf| path.display().to_string();
    let arguments = vec![
        "--tls-cert-file".to_owned(),
        path(&cert),
        "--tls-key-file".to_owned(),
        path(&key),
        "--tls-ca-cert-file".to_owned(),
        path(&files.ca),
        "--tls-auth-clients".to_owned(),
        match clients {
            ClientCerts::Required => "yes",
            ClientCerts::NotAsked => "no",
        }
        .to_owned(),
    ];
    Ok((arguments, files))
}

fn server_dir() -> Result<tempfile::TempDir, String> {
    tempfile::tempdir().map_err(|err| format!("creating a directory for Redis: {err}"))
}

/// The Redis that tests share: `REDIS_URL` when it is set, else one private server without
/// persistence for this whole test process (its temporary directory, empty, is left behind when
/// the process exits). Panics, saying how to get one, when there is neither.
pub fn shared_url() -> String {
    if let Some(url) = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    {
        return url;
    }
    static PRIVATE: OnceLock<Result<RedisServer, String>> = OnceLock::new();
    match PRIVATE.get_or_init(|| RedisServer::single(Persistence::None)) {
        Ok(server) => server.url(),
        Err(problem) => panic!("no Redis for the tests: REDIS_URL is not set and {problem}"),
    }
}

/// A key prefix of its own for the test `name` on the shared Redis ([`shared_url`]).
pub fn shared_redis(name: &str) -> RedisNamespace {
    RedisNamespace::new(shared_url(), name)
}

/// A private server with persistence ([`RedisServer::start_private`]).
pub fn private_redis() -> RedisServer {
    RedisServer::start_private()
}

/// A key prefix that no other test uses, starting with `name`: unique by process, time and a
/// counter, so that tests of several processes may share one Redis.
pub fn fresh_prefix(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "{name}:{:x}-{nanos:x}-{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A key prefix of its own on a Redis, for one test; its keys are deleted on drop.
pub struct RedisNamespace {
    base_url: String,
    prefix: String,
    store_url: String,
}

impl RedisNamespace {
    /// A [`fresh_prefix`] for `name` on the Redis at `base_url`.
    pub fn new(base_url: String, name: &str) -> Self {
        let prefix = fresh_prefix(name);
        let mut store_url = url::Url::parse(&base_url)
            .unwrap_or_else(|err| panic!("the Redis URL {base_url:?} is not a URL: {err}"));
        store_url.query_pairs_mut().append_pair("prefix", &prefix);
        Self {
            base_url,
            prefix,
            store_url: store_url.to_string(),
        }
    }

    /// The Redis URL without the prefix.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The store URL an auth-server takes (`AUTH_STORE`): the Redis URL with `?prefix=`.
    pub fn store_url(&self) -> &str {
        &self.store_url
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        // Best effort: the server may be stopped by now.
        let _ = delete_keys(&self.base_url, &self.prefix);
    }
}

/// Deletes every key under `prefix` on the Redis at `url`, with `SCAN` and `UNLINK`.
pub fn delete_keys(url: &str, prefix: &str) -> redis::RedisResult<()> {
    delete_keys_on(&mut connect(url)?, prefix)
}

fn delete_keys_on(connection: &mut redis::Connection, prefix: &str) -> redis::RedisResult<()> {
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query(connection)?;
        if !keys.is_empty() {
            redis::cmd("UNLINK").arg(&keys).query::<u64>(connection)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// `text` with the characters a `SCAN MATCH` pattern gives a meaning escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_sees_its_keys_deleted_on_drop_and_no_other() {
        let url = shared_url();
        let mut connection = connect(&url).unwrap();
        let kept = RedisNamespace::new(url.clone(), "kit-kept");
        let key_kept = format!("{}k", kept.prefix());
        let dropped = RedisNamespace::new(url.clone(), "kit-dropped");
        let key_dropped = format!("{}k", dropped.prefix());
        for key in [&key_kept, &key_dropped] {
            redis::cmd("SET")
                .arg(key)
                .arg("v")
                .query::<()>(&mut connection)
                .unwrap();
        }
        assert!(dropped.store_url().contains("prefix=kit-dropped"));
        drop(dropped);
        let exists = |key: &str, connection: &mut redis::Connection| -> bool {
            redis::cmd("EXISTS").arg(key).query(connection).unwrap()
        };
        assert!(!exists(&key_dropped, &mut connection));
        assert!(exists(&key_kept, &mut connection));
        drop(kept);
        assert!(!exists(&key_kept, &mut connection));
    }

    #[test]
    fn a_persistent_private_server_keeps_its_data_over_a_restart_and_pauses() {
        let mut server = RedisServer::start_private();
        let mut connection = connect(&server.url()).unwrap();
        redis::cmd("SET")
            .arg("k")
            .arg("v")
            .query::<()>(&mut connection)
            .unwrap();
        server.pause();
        assert!(
            !answers_ping(&server.url()),
            "a paused server answers nothing"
        );
        server.resume();
        assert!(answers_ping(&server.url()));
        server.stop();
        assert!(!answers_ping(&server.url()), "a stopped server refuses");
        server.start();
        let mut connection = connect(&server.url()).unwrap();
        let value: String = redis::cmd("GET").arg("k").query(&mut connection).unwrap();
        assert_eq!(value, "v");
    }
}
