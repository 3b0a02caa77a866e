//! Builds the server from settings and binds before serving, so that callers (main, tests)
//! learn the bound address and decide when it stops.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::EndpointExt;
use shared::serve::{self, ConnectionMetrics};

use crate::grants::{Grants, Policy};
use crate::http::{self, metrics::Metrics, AppState};
use crate::keys::{files, KeyRing};
use crate::passwords::Passwords;
use crate::settings::Settings;
use crate::tokens::TokenIssuer;
use crate::{grants, store};

pub struct Application {
    listener: tokio::net::TcpListener,
    app: poem::endpoint::BoxEndpoint<'static>,
    connection_metrics: ConnectionMetrics,
    local_addr: SocketAddr,
    shutdown_timeout: Duration,
    state: Arc<AppState>,
}

impl Application {
    /// Opens the store, loads (or creates) the keys and binds `settings.listen`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        Self::build_on(settings, listener).await
    }

    /// As [`Application::build`] on a listener bound already (tests bind port 0 first, so that
    /// the issuer can name the port).
    pub async fn build_on(
        settings: Settings,
        listener: std::net::TcpListener,
    ) -> anyhow::Result<Self> {
        let store = store::open(&settings.store.0).await?;
        let keys = files::load_or_create(&settings.keys_dir).with_context(|| {
            format!("loading signing keys from {}", settings.keys_dir.display())
        })?;
        let keys = KeyRing::new(keys).context("no signing key")?;
        tracing::info!(kid = keys.active().kid(), "signing key loaded");
        let client_secret_key = files::client_secret_key(&settings.keys_dir)?;

        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry)?;
        let http_metrics = shared::telemetry::HttpMetrics::new(&registry, http::ROUTES)?;
        let connection_metrics = ConnectionMetrics::new(&registry)?;
        let passwords = {
            let (workers, queue, metrics) = (
                settings.password_workers(),
                settings.password_queue,
                metrics.clone(),
            );
            tokio::task::spawn_blocking(move || Passwords::new(workers, queue, Some(metrics)))
                .await??
        };
        let tokens = TokenIssuer::new(
            settings.issuer_str().to_owned(),
            settings.access_token_ttl,
            keys,
        );
        let policy = Policy {
            refresh_ttl: settings.refresh_token_ttl,
            refresh_reuse_grace: settings.refresh_reuse_grace,
            default_audience: settings.audience.clone(),
            password_grant_without_client: settings.password_grant_without_client,
            throttle: crate::throttle::ThrottlePolicy {
                window: settings.login_throttle_window,
                per_address: settings.login_max_failures_per_address,
                per_user: settings.login_max_failures_per_user,
            },
        };
        let state = Arc::new(AppState {
            grants: Grants {
                store,
                passwords: Arc::new(passwords),
                tokens: Arc::new(tokens),
                policy,
            },
            client_secret_key,
            metrics,
            settings,
        });
        let app = http::app(state.clone(), registry, http_metrics).boxed();
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let local_addr = listener
            .local_addr()
            .context("the listener has no address")?;
        Ok(Self {
            listener,
            app,
            connection_metrics,
            local_addr,
            shutdown_timeout: Duration::from_secs(state.settings.shutdown_timeout),
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until SIGTERM or Ctrl-C, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then lets in-flight requests finish within the timeout.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let maintenance = tokio::spawn(maintenance(self.state.clone()));
        tracing::info!(addr = %self.local_addr, "auth-server listening");
        let result = serve::serve(
            self.listener,
            self.app,
            self.state.settings.connection_limits(),
            Some(self.connection_metrics),
            stop,
            self.shutdown_timeout,
        )
        .await;
        maintenance.abort();
        self.state.grants.store.close().await;
        tracing::info!("auth-server stopped");
        result
    }
}

/// Deletes expired data every ten minutes, and picks up keys added by `keys rotate`.
async fn maintenance(state: Arc<AppState>) {
    let keys_dir = state.settings.keys_dir.clone();
    let mut known_files = files::key_files(&keys_dir).unwrap_or_default();
    let mut interval = tokio::time::interval(Duration::from_secs(15));
    let mut ticks: u64 = 0;
    loop {
        interval.tick().await;
        if ticks % 40 == 0 {
            if let Err(err) = state.grants.store.purge_expired(grants::now()).await {
                tracing::warn!(error = %err, "purging expired data failed");
            }
        }
        ticks += 1;
        let Ok(current_files) = files::key_files(&keys_dir) else {
            continue;
        };
        if current_files == known_files {
            continue;
        }
        match files::load(&keys_dir).map(KeyRing::new) {
            Ok(Some(ring)) => {
                tracing::info!(kid = ring.active().kid(), "signing keys reloaded");
                state.grants.tokens.replace_keys(ring);
                known_files = current_files;
            }
            Ok(None) => tracing::warn!("the keys directory has no key; keeping the loaded ones"),
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "reloading signing keys failed; keeping the loaded ones"
            ),
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}
