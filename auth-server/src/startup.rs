//! Builds the server from settings and binds before serving, so that callers (main, tests)
//! learn the bound address and decide when it stops.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::EndpointExt;
use server_plumbing::serve::{self, AdminListener, ConnectionMetrics};

use crate::http::{self, metrics::Metrics, AppState};
use crate::keys::files;
use crate::oauth::{Authority, Clock, Policy};
use crate::passwords::Passwords;
use crate::settings::Settings;
use crate::tokens::TokenIssuer;

pub struct Application {
    listener: tokio::net::TcpListener,
    app: poem::endpoint::BoxEndpoint<'static>,
    admin: Option<AdminListener>,
    admin_addr: Option<SocketAddr>,
    connection_metrics: ConnectionMetrics,
    local_addr: SocketAddr,
    shutdown_timeout: Duration,
    state: Arc<AppState>,
}

impl Application {
    /// Opens the store, loads (or creates) the keys and binds `settings.listen` (and
    /// `settings.admin_listen` when set).
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
        Self::build_with_clock(settings, listener, Clock::system()).await
    }

    /// As [`Application::build_on`], deciding by `clock` (tests move it forward rather than
    /// wait for tokens to expire).
    pub async fn build_with_clock(
        settings: Settings,
        listener: std::net::TcpListener,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        // `Settings::load` checked them already; settings built in code are checked here.
        settings.validate()?;
        let store = settings.open_store().await?;
        let key_lifecycle = settings.key_lifecycle(store.clone())?;
        key_lifecycle
            .ensure(&settings.keys_dir, clock.now())
            .await
            .context("preparing the signing keys")?;
        let keys = key_lifecycle
            .load(clock.now())
            .await
            .context("loading the signing keys from the store")?;
        tracing::info!(kid = keys.active().kid(), "signing key loaded");
        let client_secret_key = files::client_secret_key(&settings.keys_dir)?;

        let registry = server_plumbing::telemetry::ServerMetrics::new(
            "auth_server",
            env!("CARGO_PKG_VERSION"),
        )?;
        let metrics = Metrics::new(&registry.own)?;
        let http_metrics =
            server_plumbing::telemetry::HttpMetrics::new(&registry.own, http::ROUTES)?;
        let connection_metrics = ConnectionMetrics::new(&registry.own)?;
        let passwords = {
            let metrics: Arc<dyn crate::passwords::PoolMetrics> = Arc::new(metrics.clone());
            let (workers, queue) = (settings.password_workers(), settings.password_queue);
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
            throttle: crate::oauth::throttle::ThrottlePolicy {
                window: settings.login_throttle_window,
                per_address: settings.login_max_failures_per_address,
                per_user: settings.login_max_failures_per_user,
            },
        };
        metrics.observe_keys(&tokens.keys());
        let tokens = Arc::new(tokens);
        let clients = Arc::new(crate::oauth::ClientCache::new(
            settings.client_cache_bound(),
        ));
        let authority = Authority::new(
            store.clone(),
            Arc::new(passwords),
            tokens.clone(),
            policy,
            client_secret_key,
            Arc::new(metrics.clone()),
        )
        .with_client_cache(clients.clone());
        let state = Arc::new(AppState {
            authority,
            store,
            tokens,
            clock,
            metrics,
            settings,
            keys: key_lifecycle,
            clients,
        });
        let admin = match state.settings.admin_listen {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("binding the admin address {addr}"))?;
                listener.set_nonblocking(true)?;
                Some(AdminListener {
                    listener: tokio::net::TcpListener::from_std(listener)?,
                    endpoint: http::admin_app(
                        state.clone(),
                        registry.clone(),
                        http_metrics.clone(),
                    )
                    .boxed(),
                })
            }
            None => None,
        };
        let admin_addr = match &admin {
            Some(admin) => Some(admin.listener.local_addr()?),
            None => None,
        };
        let app = http::app(state.clone(), registry, http_metrics).boxed();
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let local_addr = listener
            .local_addr()
            .context("the listener has no address")?;
        Ok(Self {
            listener,
            app,
            admin,
            admin_addr,
            connection_metrics,
            local_addr,
            shutdown_timeout: Duration::from_secs(state.settings.shutdown_timeout),
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin address bound, when `admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
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
        let client_reloads = self
            .state
            .settings
            .client_cache
            .then(|| tokio::spawn(reload_clients(self.state.clone())));
        tracing::info!(addr = %self.local_addr, "auth-server listening");
        if let Some(addr) = self.admin_addr {
            tracing::info!(%addr, "auth-server admin address listening (metrics, health)");
        }
        let result = serve::serve_with_admin(
            self.listener,
            self.app,
            self.admin,
            self.state.settings.connection_limits(),
            Some(self.connection_metrics),
            stop,
            self.shutdown_timeout,
        )
        .await;
        maintenance.abort();
        if let Some(reloads) = client_reloads {
            reloads.abort();
        }
        self.state.store.close().await;
        tracing::info!("auth-server stopped");
        result
    }
}

/// Deletes expired data every ten minutes, and every key sync interval takes the signing-key
/// lifecycle one step, swaps in the keys the store has now and says (log and metric) when the
/// keys held have gone unread for too long (see `keys::lifecycle`). The two run side by side:
/// a purge of a large store takes minutes, and the key sync must not wait for it, or `/readyz`
/// would call the keys stale.
async fn maintenance(state: Arc<AppState>) {
    tokio::join!(
        purge_expired(Arc::clone(&state)),
        sync_keys_every_interval(state)
    );
}

async fn purge_expired(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(Duration::from_secs(600));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let started = std::time::Instant::now();
        match state.store.purge_expired(state.clock.now()).await {
            Ok(()) => tracing::info!(
                elapsed_ms = started.elapsed().as_millis(),
                "purged expired data"
            ),
            Err(err) => tracing::warn!(error = %err, "purging expired data failed"),
        }
    }
}

async fn sync_keys_every_interval(state: Arc<AppState>) {
    let sync_interval = Duration::from_secs(state.keys.schedule().sync_interval);
    let mut interval = tokio::time::interval(sync_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        sync_keys(&state).await;
        report_key_staleness(&state);
    }
}

/// Re-reads every client twice per key sync interval (see `oauth::client_cache`). A failed
/// read leaves nothing held, so requests go to the store until a read succeeds.
async fn reload_clients(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(state.clients.reload_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        interval.tick().await;
        match state.clients.reload(state.store.as_ref()).await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("the clients were read again; holding them in memory");
            }
            Ok(_) => {}
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(
                    error = %err,
                    "reading the clients failed; looking each up in the store until a read succeeds"
                );
            }
            Err(_) => {}
        }
    }
}

/// Sets `auth_server_signing_keys_stale` and logs the start and the end of a key-sync outage once each;
/// `/readyz` answers 503 meanwhile.
fn report_key_staleness(state: &AppState) {
    let health = state.keys.sync_health();
    let stale = health.is_stale();
    state.metrics.signing_keys_stale.set(i64::from(stale));
    if !state.keys.note_staleness(stale) {
        return;
    }
    if stale {
        tracing::error!(
            since_last_read_s = health.since_last_read.as_secs(),
            stale_after_s = health.stale_after.as_secs(),
            "the signing-key states have not been read for three sync intervals: this replica \
             may sign with a revoked key, so /readyz answers 503 until a read succeeds"
        );
    } else {
        tracing::info!("the signing-key states were read again; /readyz may answer 200");
    }
}

async fn sync_keys(state: &AppState) {
    let metrics = &state.metrics;
    match state.keys.advance(state.clock.now()).await {
        Ok(done) => {
            if let Some(kid) = &done.staged {
                tracing::info!(kid, "staged the next signing key on schedule");
            }
            if let Some(kid) = &done.promoted {
                tracing::info!(kid, "promoted the next signing key to active");
            }
            if done.removed > 0 {
                tracing::info!(n_keys = done.removed, "removed expired signing keys");
            }
        }
        Err(err) => {
            metrics.signing_key_sync_failures.inc();
            tracing::warn!(
                error = format!("{err:#}"),
                "advancing the signing keys failed"
            );
        }
    }
    let current = state.tokens.keys();
    match state.keys.load(state.clock.now()).await {
        Ok(ring) => {
            let changed = ring.jwks_json() != current.jwks_json()
                || ring.active().kid() != current.active().kid();
            if !changed {
                return;
            }
            if ring.active().kid() != current.active().kid() {
                metrics.signing_key_rotations.inc();
                tracing::info!(
                    kid = ring.active().kid(),
                    previous = current.active().kid(),
                    "signing with another key"
                );
            }
            metrics.observe_keys(&ring);
            state.tokens.replace_keys(ring);
        }
        Err(err) => {
            metrics.signing_key_sync_failures.inc();
            tracing::error!(
                error = format!("{err:#}"),
                "reading the signing keys failed; keeping the keys held"
            );
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
