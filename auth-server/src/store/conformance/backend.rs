//! The stores the rules run on: the embedded one in a temporary directory, and Redis under a
//! fresh key prefix (`REDIS_URL`, else a private `redis-server` from `PATH`).

use super::*;

/// A store for one test, with what must outlive it (a temporary directory) and what to clean
/// up after it (a Redis key prefix).
pub struct TestBackend {
    store: Arc<dyn Store>,
    redis_namespace: Option<(String, String)>,
    _keep_alive: Box<dyn Any + Send + Sync>,
}

impl TestBackend {
    /// Wraps `store`; `keep_alive` (say, its `TempDir`) is dropped with the backend.
    pub fn new(store: impl Store + 'static, keep_alive: impl Any + Send + Sync) -> Self {
        Self {
            store: Arc::new(store),
            redis_namespace: None,
            _keep_alive: Box::new(keep_alive),
        }
    }

    /// A [`RedisStore`] on the test Redis ([`redis_test_url`]) under a fresh key prefix, so that
    /// tests run in parallel on one server. Panics, naming the (redacted) URL, when Redis cannot
    /// be reached.
    pub async fn redis() -> Self {
        let url = redis_test_url();
        let prefix = fresh_test_prefix();
        let store = RedisStore::open_with_prefix(&url, &prefix)
            .await
            .unwrap_or_else(|err| panic!("no Redis for the tests: {err}; set REDIS_URL to a reachable server, or unset it to start redis-server from PATH"));
        Self {
            store: Arc::new(store),
            redis_namespace: Some((url, prefix)),
            _keep_alive: Box::new(()),
        }
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// A handle to share with servers under test.
    pub fn shared(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Ends the test: deletes the Redis keys under its prefix, or the temporary files.
    pub async fn finish(self) {
        if let Some((url, prefix)) = &self.redis_namespace {
            delete_redis_namespace(url, prefix).await;
        }
    }
}

/// A key prefix no other test uses.
pub fn fresh_test_prefix() -> String {
    format!("conformance-{:016x}:", rand::random::<u64>())
}

async fn delete_redis_namespace(url: &str, prefix: &str) {
    let client = redis::Client::open(url).expect("test Redis URL");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to the test Redis");
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
            .expect("scanning the test namespace");
        if !keys.is_empty() {
            let _: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut connection)
                .await
                .expect("deleting test keys");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

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

// ---------------------------------------------------------------------------------------------
// The test Redis
// ---------------------------------------------------------------------------------------------

/// The Redis that tests use: `REDIS_URL` when it is set, else a private `redis-server` from
/// `PATH`, started once per test process on a free port without persistence, and stopped when
/// the process exits. With neither, panics with a message that says how to get one.
pub fn redis_test_url() -> String {
    if let Some(url) = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    {
        return url;
    }
    static PRIVATE: OnceLock<Result<PrivateRedis, String>> = OnceLock::new();
    match PRIVATE.get_or_init(PrivateRedis::start) {
        Ok(server) => server.url.clone(),
        Err(reason) => panic!("no Redis for the tests: {reason}"),
    }
}

/// A `redis-server` child of this process, run under `sh` that holds our end of a pipe: when
/// this process exits, however it exits, the pipe closes and `sh` stops the server.
struct PrivateRedis {
    url: String,
    /// Never waited for; its stdin (the pipe) stays open as long as this process lives.
    _supervisor: Child,
}

/// Starts `redis-server "$@"`, stops it when stdin reaches end of file, and exits when it exits.
const SUPERVISOR: &str = r#"
exec 3<&0
redis-server "$@" </dev/null 3<&- &
server=$!
( read -r _ <&3; kill "$server" 2>/dev/null ) &
watcher=$!
wait "$server"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"#;

impl PrivateRedis {
    fn start() -> Result<Self, String> {
        let how = "set REDIS_URL (for example REDIS_URL=redis://127.0.0.1:6379/0) or put redis-server on PATH \
                   (for example `apt-get install redis-server`)";
        let Some(binary) = find_on_path("redis-server") else {
            return Err(format!(
                "REDIS_URL is not set and redis-server is not on PATH; {how}"
            ));
        };
        let mut last_problem = String::new();
        // A free port can be taken between our probe and the server's bind; try a few.
        for _attempt in 0..3 {
            let port = free_port().map_err(|err| format!("finding a free port: {err}"))?;
            let mut supervisor = Command::new("sh")
                .arg("-c")
                .arg(SUPERVISOR)
                .arg("redis-test-supervisor")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(std::env::temp_dir())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|err| format!("starting {}: {err}", binary.display()))?;
            match wait_until_ready(port, &mut supervisor) {
                Ok(()) => {
                    return Ok(Self {
                        url: format!("redis://127.0.0.1:{port}/0"),
                        _supervisor: supervisor,
                    })
                }
                Err(problem) => {
                    let _ = supervisor.kill();
                    let _ = supervisor.wait();
                    last_problem = problem;
                }
            }
        }
        Err(format!(
            "{} did not start ({last_problem}); {how}",
            binary.display()
        ))
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_until_ready(port: u16, supervisor: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = supervisor.try_wait() {
            return Err(format!("redis-server on port {port} exited with {status}"));
        }
        if answers_ping(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!(
        "redis-server on port {port} did not answer within 10 s"
    ))
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0_u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
