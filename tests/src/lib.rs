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

/// Shows server logs when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        shared::telemetry::init_logging(false);
    }
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
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
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
            store: auth_server::settings::StoreUrl(format!("sqlite://{}", dir.path().join("auth.db").display())),
            keys_dir: dir.path().join("keys"),
            password_workers: 2,
            ..auth_server::Settings::default()
        };
        adjust(&mut settings);
        Self::start(settings, listener, dir).await
    }

    async fn start(settings: auth_server::Settings, listener: std::net::TcpListener, dir: tempfile::TempDir) -> Self {
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let app = auth_server::Application::build_on(settings.clone(), listener).await.unwrap();
        let running = spawn_server(|stopped| app.run_until(async move {
            let _ = stopped.await;
        }));
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

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.unwrap();
        }
    }

    /// Adds a user straight into the store, with an Argon2id hash of `password`.
    pub async fn add_user(&self, username: &str, password: &str, scopes: &str) {
        let password = password.to_owned();
        let password_hash = tokio::task::spawn_blocking(move || auth_server::passwords::hash_blocking(&password))
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
            })
            .await
            .unwrap();
    }

    /// Registers a client with `secret`, as `auth-server client add` does.
    pub async fn add_client(&self, client_id: &str, secret: &str, grants: &[&str], scopes: &str, audiences: &[&str]) {
        let key = auth_server::keys::files::client_secret_key(&self.settings.keys_dir).unwrap();
        self.store
            .insert_client(&ClientRecord {
                client_id: client_id.to_owned(),
                secret_hash: auth_server::client_auth::hash_secret(&key, secret),
                grants: grants.iter().map(|g| (*g).to_owned()).collect(),
                scopes: shared::Scope::parse(scopes).unwrap(),
                audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            })
            .await
            .unwrap();
    }

    /// `POST /token` with a form.
    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http.post(self.url("/token")).form(form).send().await.unwrap()
    }

    /// `POST /token` with a form and HTTP Basic client authentication.
    pub async fn token_basic(&self, client_id: &str, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
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
            .token(&[("grant_type", "password"), ("username", username), ("password", password), ("scope", "")])
            .await;
        assert_eq!(response.status(), 200, "password grant for {username}");
        response.json().await.unwrap()
    }

    /// A client_credentials grant that must succeed.
    pub async fn client_credentials(&self, client_id: &str, secret: &str, scope: &str) -> TokenResponse {
        let response = self
            .token_basic(client_id, secret, &[("grant_type", "client_credentials"), ("scope", scope)])
            .await;
        assert_eq!(response.status(), 200, "client_credentials for {client_id}");
        response.json().await.unwrap()
    }

    /// The server's JWKS.
    pub async fn jwks(&self) -> serde_json::Value {
        self.http.get(self.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap()
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
        init_logs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = resource_server::Settings {
            listen: addr,
            issuer: issuer.parse().unwrap(),
            ..resource_server::Settings::default()
        };
        let app = resource_server::Application::build_on(settings, listener, |mut config| {
            config.unknown_kid_cooldown = Duration::from_millis(500);
            config.retry_interval = Duration::from_millis(100);
            config.min_refresh = Duration::from_secs(1);
            config
        })
        .await
        .unwrap();
        let verifier = app.verifier().clone();
        let running = spawn_server(|stopped| app.run_until(async move {
            let _ = stopped.await;
        }));
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

    /// `GET path` with a bearer token.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(token).send().await.unwrap()
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
