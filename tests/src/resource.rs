//! [`TestResource`]: the resource server's application on an ephemeral port, trusting an
//! issuer, with its verifier's timings shortened so that key-refresh tests run in seconds.

use std::time::Duration;

use crate::TestAuth;
use crate::{http_client, init_logs, reqwest, scrape_metrics, spawn_server, wait_ready, Running};

/// A resource server trusting `auth`.
pub struct TestResource {
    pub url: String,
    pub http: reqwest::Client,
    pub verifier: oauth2_jwt_verifier::Verifier,
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
        adjust: impl FnOnce(&mut oauth2_jwt_verifier::VerifierConfig),
    ) -> Self {
        Self::spawn_full(issuer, wait, |_| {}, adjust).await
    }

    async fn spawn_full(
        issuer: &str,
        wait: bool,
        adjust_settings: impl FnOnce(&mut resource_server::Settings),
        adjust_verifier: impl FnOnce(&mut oauth2_jwt_verifier::VerifierConfig),
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
