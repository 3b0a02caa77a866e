//! The harness of the system tests: real servers on ephemeral ports, each with its own temporary
//! keys and store, spoken to over HTTP. Tests start their own servers, so they run in parallel.
//! `TEST_LOG=1` shows the servers' logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a harness fails loudly

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_server::store::{ClientRecord, Store, UserRecord};
use shared::wire::TokenResponse;
use tokio::sync::oneshot;

pub use reqwest;

pub mod binaries;

/// Shows server logs when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        shared::telemetry::init_logging(false);
    }
}

/// A server's `/metrics` page, checked to be Prometheus text (format 0.0.4).
pub async fn scrape_metrics(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

/// The value of the first sample of `name` whose labels include all of `labels`.
pub fn metric_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let matches = metric == name
                && labels.iter().all(|(key, wanted)| {
                    let pair = format!("{key}=\"{wanted}\"");
                    label_text.split(',').any(|found| found == pair)
                });
            matches.then(|| value.parse().ok()).flatten()
        })
}

/// [`metric_sample`], failing the test when there is no such sample.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_sample(text, name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{text}"))
}

/// A running server stopped when dropped.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.expect("server task panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn spawn_server<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Running
where
    F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(stopped));
    Running {
        stop: Some(stop),
        task: Some(task),
    }
}

/// Polls `url` until it answers 200, for at most ten seconds.
pub async fn wait_ready(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(response) = http.get(url).send().await {
            if response.status() == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} was not ready within 10 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// An auth-server on 127.0.0.1:0 with temporary keys and SQLite store.
pub struct TestAuth {
    pub url: String,
    pub addr: SocketAddr,
    pub settings: auth_server::Settings,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    running: Option<Running>,
}

impl TestAuth {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts with settings adjusted by `adjust` (the listen address, issuer, keys and store
    /// are set already; `adjust` may replace them).
    pub async fn spawn_with(adjust: impl FnOnce(&mut auth_server::Settings)) -> Self {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let mut settings = auth_server::Settings {
            listen: addr,
            issuer: url.parse().unwrap(),
            store: auth_server::settings::StoreUrl(format!(
                "sqlite://{}",
                dir.path().join("auth.db").display()
            )),
            keys_dir: dir.path().join("keys"),
            password_workers: 2,
            ..auth_server::Settings::default()
        };
        adjust(&mut settings);
        Self::start(settings, listener, dir).await
    }

    async fn start(
        settings: auth_server::Settings,
        listener: std::net::TcpListener,
        dir: tempfile::TempDir,
    ) -> Self {
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let app = auth_server::Application::build_on(settings.clone(), listener)
            .await
            .unwrap();
        let running = spawn_server(|stopped| {
            app.run_until(async move {
                let _ = stopped.await;
            })
        });
        let store = auth_server::store::open(&settings.store.0).await.unwrap();
        let http = http_client();
        wait_ready(&http, &format!("{url}/readyz")).await;
        Self {
            url,
            addr,
            settings,
            store,
            http,
            dir,
            running: Some(running),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// This server's `/metrics` page.
    pub async fn metrics(&self) -> String {
        scrape_metrics(&self.http, &self.url("/metrics")).await
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.unwrap();
        }
    }

    /// Adds a user straight into the store, with an Argon2id hash of `password`.
    pub async fn add_user(&self, username: &str, password: &str, scopes: &str) {
        let password = password.to_owned();
        let password_hash =
            tokio::task::spawn_blocking(move || auth_server::passwords::hash_blocking(&password))
                .await
                .unwrap()
                .unwrap();
        self.store
            .insert_user(&UserRecord {
                username: username.to_owned(),
                full_name: Some(format!("{username} full name")),
                email: Some(format!("{username}@example.com")),
                password_hash,
                disabled: false,
                scopes: shared::Scope::parse(scopes).unwrap(),
                stamp: auth_server::tokens::new_stamp(),
                not_before: 0,
            })
            .await
            .unwrap();
    }

    /// Registers a client with `secret`, as `auth-server client add` does.
    pub async fn add_client(
        &self,
        client_id: &str,
        secret: &str,
        grants: &[&str],
        scopes: &str,
        audiences: &[&str],
    ) {
        self.add_client_with(client_id, secret, grants, scopes, audiences, |_| {})
            .await;
    }

    /// Registers a confidential client that may introspect any token (`client add --introspect`),
    /// as a resource server that introspects would be.
    pub async fn add_introspecting_client(&self, client_id: &str, secret: &str) {
        self.add_client_with(client_id, secret, &["client_credentials"], "", &[], |c| {
            c.introspect = true
        })
        .await;
    }

    /// Registers a public client (`client add ID --public`): no secret, the password and
    /// refresh_token grants.
    pub async fn add_public_client(&self, client_id: &str, scopes: &str) {
        self.add_client_with(
            client_id,
            "",
            &["password", "refresh_token"],
            scopes,
            &[],
            |c| {
                c.public = true;
                c.secret_hash = String::new();
            },
        )
        .await;
    }

    /// Registers a client as [`add_client`](Self::add_client) does, with the record adjusted
    /// by `adjust` before it is stored.
    pub async fn add_client_with(
        &self,
        client_id: &str,
        secret: &str,
        grants: &[&str],
        scopes: &str,
        audiences: &[&str],
        adjust: impl FnOnce(&mut ClientRecord),
    ) {
        let key = auth_server::keys::files::client_secret_key(&self.settings.keys_dir).unwrap();
        let mut record = ClientRecord {
            client_id: client_id.to_owned(),
            secret_hash: auth_server::oauth::client_auth::hash_secret(&key, secret),
            previous_secret: None,
            public: false,
            introspect: false,
            grants: grants
                .iter()
                .map(|g| g.parse().expect("the test names a known grant type"))
                .collect(),
            scopes: shared::Scope::parse(scopes).unwrap(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            stamp: auth_server::tokens::new_stamp(),
            not_before: 0,
        };
        adjust(&mut record);
        self.store.insert_client(&record).await.unwrap();
    }

    /// `POST /token` with a form.
    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// `POST /token` with a form and HTTP Basic client authentication.
    pub async fn token_basic(
        &self,
        client_id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth(client_id, Some(secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A password grant that must succeed.
    pub async fn password_grant(&self, username: &str, password: &str) -> TokenResponse {
        let response = self
            .token(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("scope", ""),
            ])
            .await;
        assert_eq!(response.status(), 200, "password grant for {username}");
        response.json().await.unwrap()
    }

    /// A client_credentials grant that must succeed.
    pub async fn client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        scope: &str,
    ) -> TokenResponse {
        let response = self
            .token_basic(
                client_id,
                secret,
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(response.status(), 200, "client_credentials for {client_id}");
        response.json().await.unwrap()
    }

    /// The signing-key lifecycle on this server's store, with its key-encryption key, as the
    /// CLI works on it.
    pub fn key_lifecycle(&self) -> auth_server::keys::lifecycle::KeyLifecycle {
        self.settings.key_lifecycle(self.store.clone()).unwrap()
    }

    /// The kid of the key the store has active.
    pub async fn active_kid(&self) -> String {
        self.key_lifecycle()
            .list()
            .await
            .unwrap()
            .into_iter()
            .find(|key| key.state == auth_server::store::KeyState::Active)
            .expect("the store has an active key")
            .kid
    }

    /// The PKCS#8 private key of `kid`, opened from the store.
    pub async fn private_signing_key(&self, kid: &str) -> Vec<u8> {
        self.key_lifecycle()
            .private_key(kid)
            .await
            .unwrap()
            .to_vec()
    }

    /// The server's JWKS.
    pub async fn jwks(&self) -> serde_json::Value {
        self.http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A resource server trusting `auth`.
pub struct TestResource {
    pub url: String,
    pub http: reqwest::Client,
    pub verifier: shared::Verifier,
    running: Option<Running>,
}

impl TestResource {
    pub async fn spawn(auth: &TestAuth) -> Self {
        Self::spawn_for(&auth.url, true).await
    }

    /// A resource server trusting the issuer at `issuer`; waits for its keys when `wait` is set.
    pub async fn spawn_for(issuer: &str, wait: bool) -> Self {
        Self::spawn_full(issuer, wait, |_| {}, |_| {}).await
    }

    /// As [`TestResource::spawn_for`], with settings adjusted by `adjust`.
    pub async fn spawn_configured(
        issuer: &str,
        wait: bool,
        adjust: impl FnOnce(&mut resource_server::Settings),
    ) -> Self {
        Self::spawn_full(issuer, wait, adjust, |_| {}).await
    }

    /// As [`TestResource::spawn_for`], with the verifier's settings (already shortened for
    /// tests) adjusted by `adjust`.
    pub async fn spawn_with(
        issuer: &str,
        wait: bool,
        adjust: impl FnOnce(&mut shared::VerifierConfig),
    ) -> Self {
        Self::spawn_full(issuer, wait, |_| {}, adjust).await
    }

    async fn spawn_full(
        issuer: &str,
        wait: bool,
        adjust_settings: impl FnOnce(&mut resource_server::Settings),
        adjust_verifier: impl FnOnce(&mut shared::VerifierConfig),
    ) -> Self {
        init_logs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut settings = resource_server::Settings {
            listen: addr,
            issuer: issuer.parse().unwrap(),
            ..resource_server::Settings::default()
        };
        adjust_settings(&mut settings);
        let app = resource_server::Application::build_on(settings, listener, |mut config| {
            config.unknown_kid_cooldown = Duration::from_millis(500);
            config.retry_interval = Duration::from_millis(100);
            config.min_refresh = Duration::from_secs(1);
            adjust_verifier(&mut config);
            config
        })
        .await
        .unwrap();
        let verifier = app.verifier().clone();
        let running = spawn_server(|stopped| {
            app.run_until(async move {
                let _ = stopped.await;
            })
        });
        let url = format!("http://{addr}");
        let http = http_client();
        if wait {
            wait_ready(&http, &format!("{url}/readyz")).await;
        }
        Self {
            url,
            http,
            verifier,
            running: Some(running),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// This server's `/metrics` page.
    pub async fn metrics(&self) -> String {
        scrape_metrics(&self.http, &self.url("/metrics")).await
    }

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_me(&self, token: &str) -> reqwest::Response {
        self.get("/users/me", token).await
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.unwrap();
        }
    }
}

/// The `WWW-Authenticate` header of a response, or "".
pub fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

impl TestAuth {
    /// An auth-server on the Redis store at `store_url` (a URL with its `?prefix=`, as from
    /// [`RedisNamespace::store_url`]), with settings adjusted by `adjust` as in
    /// [`TestAuth::spawn_with`]. Replicas share a store URL, and also the keys directory and the
    /// issuer, which `adjust` sets.
    pub async fn spawn_on_redis(
        store_url: &str,
        adjust: impl FnOnce(&mut auth_server::Settings),
    ) -> Self {
        let store_url = store_url.to_owned();
        Self::spawn_with(move |settings| {
            settings.store = auth_server::settings::StoreUrl(store_url);
            adjust(settings);
        })
        .await
    }
}

pub use redis_harness::{private_redis, shared_redis, RedisNamespace, RedisServer};

/// Redis for the tests: a private `redis-server` that a test may stop, start, pause and resume,
/// and the Redis that replica tests share (`REDIS_URL`, else one private server per process),
/// with a key prefix per test so that tests run in parallel on one server.
mod redis_harness {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream, ToSocketAddrs};
    use std::path::PathBuf;
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    const HOW_TO_GET_REDIS: &str = "set REDIS_URL to a Redis the tests may use (for example \
        REDIS_URL=redis://127.0.0.1:6379/0), or put redis-server on PATH (for example \
        `apt-get install redis-server`) so that the tests start their own";

    /// Runs `redis-server "$@"` and stops it when its standard input, a pipe from this process,
    /// reaches end of file: when the test closes it, or when this process exits however it
    /// exits. Prints the server's process id first; exits when the server exits.
    const SUPERVISOR: &str = r#"
exec 3<&0 </dev/null
redis-server "$@" 3<&- >/dev/null 2>&1 &
server=$!
echo "$server"
( cat <&3 >/dev/null; kill -CONT "$server" 2>/dev/null; kill "$server" 2>/dev/null ) >/dev/null 2>&1 &
exec 3<&-
wait "$server"
"#;

    /// A `redis-server` child on 127.0.0.1 that only its test uses. With persistence it keeps an
    /// append-only file (fsync on every write) in a temporary directory, so that what it
    /// acknowledged survives [`stop`](Self::stop) and [`start`](Self::start), as a production
    /// Redis with AOF does. Stopped on drop, and when the test process exits.
    pub struct RedisServer {
        port: u16,
        persistence: Option<tempfile::TempDir>,
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
        /// Starts a private server with persistence on a free port. Panics, saying how to get
        /// one, when `redis-server` is not on PATH.
        pub fn start_private() -> Self {
            Self::start_new(true).unwrap_or_else(|problem| {
                panic!(
                    "this test stops Redis, so it starts its own redis-server (REDIS_URL is not \
                     used): {problem}; put redis-server on PATH (for example \
                     `apt-get install redis-server`)"
                )
            })
        }

        fn start_new(persistent: bool) -> Result<Self, String> {
            if find_on_path("redis-server").is_none() {
                return Err("redis-server is not on PATH".to_owned());
            }
            let mut persistence = if persistent {
                Some(
                    tempfile::tempdir()
                        .map_err(|err| format!("creating a directory for Redis: {err}"))?,
                )
            } else {
                None
            };
            let mut last_problem = String::new();
            // Another process may take the free port between our probe and the server's bind.
            for _ in 0..3 {
                let port = TcpListener::bind("127.0.0.1:0")
                    .and_then(|listener| listener.local_addr())
                    .map_err(|err| format!("finding a free port: {err}"))?
                    .port();
                let mut server = Self {
                    port,
                    persistence,
                    process: None,
                };
                match server.launch() {
                    Ok(()) => return Ok(server),
                    Err(problem) => {
                        last_problem = problem;
                        persistence = server.persistence.take();
                    }
                }
            }
            Err(last_problem)
        }

        fn launch(&mut self) -> Result<(), String> {
            let mut arguments: Vec<String> = [
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ]
            .iter()
            .map(|argument| (*argument).to_owned())
            .collect();
            match &self.persistence {
                Some(dir) => {
                    arguments.extend(
                        ["--appendonly", "yes", "--appendfsync", "always", "--dir"]
                            .map(str::to_owned),
                    );
                    arguments.push(dir.path().display().to_string());
                }
                None => {
                    arguments.extend(["--appendonly", "no", "--dir"].map(str::to_owned));
                    arguments.push(std::env::temp_dir().display().to_string());
                }
            }
            let mut supervisor = Command::new("sh")
                .arg("-c")
                .arg(SUPERVISOR)
                .arg("redis-test-supervisor")
                .args(&arguments)
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
                if answers_ping(self.port) {
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

        pub fn port(&self) -> u16 {
            self.port
        }

        /// `redis://127.0.0.1:PORT/0`.
        pub fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/0", self.port)
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

    fn signal(pid: u32, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status();
        assert!(
            matches!(status, Ok(status) if status.success()),
            "kill -{name} {pid} failed: {status:?}"
        );
    }

    fn find_on_path(program: &str) -> Option<PathBuf> {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    }

    fn answers_ping(port: u16) -> bool {
        let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let mut connection = Connection::new(stream);
        matches!(connection.command(&["PING"]), Ok(Reply::Simple(pong)) if pong == "PONG")
    }

    /// A Redis that any number of tests share, each under its own key prefix: `REDIS_URL` when it
    /// is set, else one private `redis-server` (without persistence) for this whole process.
    /// Panics, saying how to get one, when there is neither.
    pub fn shared_redis(name: &str) -> RedisNamespace {
        if let Some(url) = std::env::var("REDIS_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
        {
            return RedisNamespace::new(url, name);
        }
        static PRIVATE: OnceLock<Result<RedisServer, String>> = OnceLock::new();
        match PRIVATE.get_or_init(|| RedisServer::start_new(false)) {
            Ok(server) => server.namespace(name),
            Err(problem) => panic!(
                "no Redis for the tests: REDIS_URL is not set and {problem}; {HOW_TO_GET_REDIS}"
            ),
        }
    }

    /// A private server with persistence, for a test that stops Redis (never the shared one).
    pub fn private_redis() -> RedisServer {
        RedisServer::start_private()
    }

    /// A key prefix of its own on a Redis, for one test; its keys are deleted on drop.
    pub struct RedisNamespace {
        base_url: String,
        prefix: String,
        store_url: String,
    }

    impl RedisNamespace {
        fn new(base_url: String, name: &str) -> Self {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.subsec_nanos());
            let prefix = format!(
                "system-tests:{name}:{:x}-{nanos:x}-{}:",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let mut store_url = url::Url::parse(&base_url)
                .unwrap_or_else(|err| panic!("REDIS_URL {base_url:?} is not a URL: {err}"));
            store_url.query_pairs_mut().append_pair("prefix", &prefix);
            Self {
                base_url,
                prefix,
                store_url: store_url.to_string(),
            }
        }

        /// The `AUTH_STORE` URL: the Redis URL with `?prefix=`.
        pub fn store_url(&self) -> &str {
            &self.store_url
        }

        pub fn prefix(&self) -> &str {
            &self.prefix
        }
    }

    impl Drop for RedisNamespace {
        fn drop(&mut self) {
            // Best effort: the server may be stopped, or behind TLS, which this client lacks.
            let _ = delete_keys(&self.base_url, &self.prefix);
        }
    }

    /// Deletes the keys under `prefix`, with `SCAN` and `UNLINK`.
    fn delete_keys(base_url: &str, prefix: &str) -> Result<(), String> {
        let url = url::Url::parse(base_url).map_err(|err| err.to_string())?;
        if url.scheme() != "redis" {
            return Err(format!("{} is not plain redis://", url.scheme()));
        }
        let host = url.host_str().unwrap_or("127.0.0.1");
        let address = (host, url.port().unwrap_or(6379))
            .to_socket_addrs()
            .map_err(|err| err.to_string())?
            .next()
            .ok_or("no address")?;
        let stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))
            .map_err(|err| err.to_string())?;
        let mut connection = Connection::new(stream);
        if let Some(password) = url.password() {
            let password = percent_decode(password);
            let username = percent_decode(url.username());
            let reply = if username.is_empty() {
                connection.command(&["AUTH", &password])
            } else {
                connection.command(&["AUTH", &username, &password])
            };
            reply.map_err(|err| err.to_string())?;
        }
        let database = url.path().trim_start_matches('/');
        if !database.is_empty() {
            connection
                .command(&["SELECT", database])
                .map_err(|err| err.to_string())?;
        }
        let pattern = format!("{prefix}*");
        let mut cursor = "0".to_owned();
        loop {
            let reply = connection
                .command(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])
                .map_err(|err| err.to_string())?;
            let Reply::Array(mut parts) = reply else {
                return Err(format!("SCAN answered {reply:?}"));
            };
            let (Some(Reply::Array(keys)), Some(Reply::Bulk(next))) = (parts.pop(), parts.pop())
            else {
                return Err("SCAN answered something else".to_owned());
            };
            let keys: Vec<String> = keys
                .into_iter()
                .filter_map(|key| match key {
                    Reply::Bulk(key) => Some(String::from_utf8_lossy(&key).into_owned()),
                    _ => None,
                })
                .collect();
            if !keys.is_empty() {
                let mut unlink = vec!["UNLINK"];
                unlink.extend(keys.iter().map(String::as_str));
                connection.command(&unlink).map_err(|err| err.to_string())?;
            }
            cursor = String::from_utf8_lossy(&next).into_owned();
            if cursor == "0" {
                return Ok(());
            }
        }
    }

    fn percent_decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut index = 0;
        while index < bytes.len() {
            let escaped = (bytes[index] == b'%')
                .then(|| bytes.get(index + 1..index + 3))
                .flatten()
                .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
            match escaped {
                Some(byte) => {
                    decoded.push(byte);
                    index += 3;
                }
                None => {
                    decoded.push(bytes[index]);
                    index += 1;
                }
            }
        }
        String::from_utf8_lossy(&decoded).into_owned()
    }

    /// A reply in the Redis protocol (RESP2), as far as the harness needs it.
    #[derive(Debug)]
    enum Reply {
        Simple(String),
        Integer(#[allow(dead_code)] i64),
        Bulk(Vec<u8>),
        Nil,
        Array(Vec<Reply>),
    }

    /// A blocking connection that sends one command at a time; enough for the harness, which
    /// must not depend on the client library under test.
    struct Connection {
        reader: BufReader<TcpStream>,
    }

    impl Connection {
        fn new(stream: TcpStream) -> Self {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            Self {
                reader: BufReader::new(stream),
            }
        }

        fn command(&mut self, arguments: &[&str]) -> std::io::Result<Reply> {
            let mut request = format!("*{}\r\n", arguments.len()).into_bytes();
            for argument in arguments {
                request.extend(format!("${}\r\n", argument.len()).into_bytes());
                request.extend(argument.as_bytes());
                request.extend(b"\r\n");
            }
            self.reader.get_mut().write_all(&request)?;
            self.reply()
        }

        fn reply(&mut self) -> std::io::Result<Reply> {
            let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end_matches("\r\n");
            let (kind, rest) = line.split_at(line.len().min(1));
            let number = || {
                rest.parse::<i64>()
                    .map_err(|_| invalid(format!("bad length in {line:?}")))
            };
            match kind {
                "+" => Ok(Reply::Simple(rest.to_owned())),
                "-" => Err(invalid(format!("Redis answered {rest}"))),
                ":" => Ok(Reply::Integer(number()?)),
                "$" => match usize::try_from(number()?) {
                    Err(_) => Ok(Reply::Nil),
                    Ok(length) => {
                        let mut bulk = vec![0; length + 2];
                        self.reader.read_exact(&mut bulk)?;
                        bulk.truncate(length);
                        Ok(Reply::Bulk(bulk))
                    }
                },
                "*" => match usize::try_from(number()?) {
                    Err(_) => Ok(Reply::Nil),
                    Ok(count) => (0..count)
                        .map(|_| self.reply())
                        .collect::<Result<_, _>>()
                        .map(Reply::Array),
                },
                _ => Err(invalid(format!("unexpected reply {line:?}"))),
            }
        }
    }
}
