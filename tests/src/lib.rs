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
        shared::telemetry::init_logging(false);
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
