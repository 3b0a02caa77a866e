//! The harness of the system tests: real servers on ephemeral ports, each with its own temporary
//! keys and store, spoken to over HTTP. Tests start their own servers, so they run in parallel.
//! `TEST_LOG=1` shows the servers' logs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a harness fails loudly

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use reqwest;

mod auth;
pub mod binaries;
mod metrics;
mod resource;

pub use auth::TestAuth;
pub use metrics::{metric_sample, metric_value, scrape_metrics};
pub use resource::TestResource;
pub use test_kit::redis::{private_redis, RedisNamespace, RedisServer};

/// A key prefix of its own for the test `name` on the Redis that tests share (`REDIS_URL`, else
/// one private `redis-server` per test process).
pub fn shared_redis(name: &str) -> RedisNamespace {
    test_kit::redis::shared_redis(&format!("system-tests:{name}"))
}

/// Shows server logs when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        server_plumbing::telemetry::init_logging(false);
    }
}

/// A running server stopped when dropped.
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub(crate) async fn shutdown(mut self) -> std::io::Result<()> {
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

pub(crate) fn spawn_server<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Running
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

/// The `WWW-Authenticate` header of a response, or "".
pub fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The `Retry-After` of a response, in seconds; the response must carry one.
pub fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The RFC 6749 §5.2 error code of a refusal.
pub async fn error_of(response: reqwest::Response) -> String {
    let body: serde_json::Value = response.json().await.unwrap();
    body["error"].as_str().unwrap().to_owned()
}

/// The claims of a JWT, unverified: what the server put in a token it issued.
pub fn claims_of(jwt: &str) -> serde_json::Value {
    jwt_part(jwt, 1)
}

/// The header of a JWT, unverified.
pub fn header_of(jwt: &str) -> serde_json::Value {
    jwt_part(jwt, 0)
}

fn jwt_part(jwt: &str, index: usize) -> serde_json::Value {
    use base64::Engine;
    let part = jwt.split('.').nth(index).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
