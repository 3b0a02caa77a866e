//! Builds the resource server and binds before serving; the verifier starts fetching keys in
//! the background, so the server starts even when the auth-server is not up yet.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use oauth2_jwt_verifier::poem::BearerChallenge;
use oauth2_jwt_verifier::{Verifier, VerifierConfig};
use poem::web::Html;
use poem::{endpoint::make_sync, get, EndpointExt, IntoResponse, Route};
use poem_openapi::OpenApiService;
use server_plumbing::serve::{self, AdminListener, ConnectionLimits, ConnectionMetrics};
use server_plumbing::telemetry::{metrics_endpoint, HttpMetrics, RequestLog, ServerMetrics};

use crate::http::{self, health::HealthApi, items::ItemsApi, users_me::UsersApi};
use crate::Settings;

pub struct Application {
    listener: tokio::net::TcpListener,
    app: poem::endpoint::BoxEndpoint<'static>,
    admin: Option<AdminListener>,
    admin_addr: Option<SocketAddr>,
    limits: ConnectionLimits,
    connection_metrics: ConnectionMetrics,
    local_addr: SocketAddr,
    shutdown_timeout: Duration,
    verifier: Verifier,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind(settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        Self::build_on(settings, listener, |config| config).await
    }

    /// As [`Application::build`] on a listener bound already, with a chance to adjust the
    /// verifier (tests shorten its timers).
    pub async fn build_on(
        settings: Settings,
        listener: std::net::TcpListener,
        adjust: impl FnOnce(VerifierConfig) -> VerifierConfig,
    ) -> anyhow::Result<Self> {
        // `Settings::load` checked them already; settings built in code are checked here.
        settings.validate().map_err(anyhow::Error::msg)?;
        let config = settings
            .verifier_config()
            .context("configuring the token verifier")?;
        for url in settings.plain_http_urls() {
            tracing::warn!(
                %url,
                "signing keys are fetched over plain http off loopback: anyone on the path \
                 could swap them; use https unless this network is trusted"
            );
        }
        let verifier = Verifier::start(adjust(config)).context("starting the token verifier")?;

        // The server's own series are `resource_server_*`; the verifier's keep their
        // `oauth2_jwt_verifier_` prefix, as any service embedding it shows them.
        let registry = ServerMetrics::new("resource_server", env!("CARGO_PKG_VERSION"))?;
        let http_metrics = HttpMetrics::new(&registry.own, http::ROUTES)?;
        verifier.register_metrics(&registry.shared)?;
        let connection_metrics = ConnectionMetrics::new(&registry.own)?;

        let service = OpenApiService::new((UsersApi, ItemsApi, HealthApi(verifier.clone())), "resource-server", env!("CARGO_PKG_VERSION"))
            .description("An API that verifies the auth-server's access tokens locally. Authorize with a user's name and password, then try /users/me.");
        let (spec, docs) = http::swagger(
            &service.spec(),
            &service.swagger_ui_html(),
            &settings.token_url(),
        );
        let admin = match settings.admin_listen {
            Some(addr) => {
                let listener = std::net::TcpListener::bind(addr)
                    .with_context(|| format!("binding the admin address {addr}"))?;
                listener.set_nonblocking(true)?;
                Some(AdminListener {
                    listener: tokio::net::TcpListener::from_std(listener)?,
                    endpoint: admin_app(&verifier, registry.clone(), http_metrics.clone()),
                })
            }
            None => None,
        };
        let admin_addr = match &admin {
            Some(admin) => Some(admin.listener.local_addr()?),
            None => None,
        };
        let route = Route::new()
            .nest("/", service.with(BearerChallenge::default()))
            .at("/docs", make_sync(move |_| Html(docs.clone())))
            .at(
                "/openapi.json",
                make_sync(move |_| spec.clone().with_content_type("application/json")),
            );
        // With an admin address, metrics are served there only.
        let route = if settings.admin_listen.is_none() {
            route.at("/metrics", get(metrics_endpoint).data(registry))
        } else {
            route
        };
        let app = route
            .data(verifier.clone())
            .after(|result| async move {
                // RFC 9110 §15.5.6: a 405 names the allowed methods; every route here is GET.
                let mut response = result.unwrap_or_else(|err| err.into_response());
                if response.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED {
                    response.headers_mut().insert(
                        poem::http::header::ALLOW,
                        poem::http::HeaderValue::from_static("GET"),
                    );
                }
                Ok::<_, poem::Error>(response)
            })
            .with(RequestLog::new(http_metrics))
            .boxed();

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
            limits: settings.connection_limits(),
            connection_metrics,
            local_addr,
            shutdown_timeout: Duration::from_secs(settings.shutdown_timeout),
            verifier,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin address bound, when `admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr, "resource-server listening");
        if let Some(addr) = self.admin_addr {
            tracing::info!(%addr, "resource-server admin address listening (metrics, health)");
        }
        serve::serve_with_admin(
            self.listener,
            self.app,
            self.admin,
            self.limits,
            Some(self.connection_metrics),
            stop,
            self.shutdown_timeout,
        )
        .await
    }
}

/// What the admin address serves: `/metrics` (the request metrics and the verifier's own:
/// verifications by outcome, key fetches, key set size and age, read at scrape time),
/// `/livez` and `/readyz`.
fn admin_app(
    verifier: &Verifier,
    registry: ServerMetrics,
    http_metrics: HttpMetrics,
) -> poem::endpoint::BoxEndpoint<'static> {
    let health = OpenApiService::new(
        HealthApi(verifier.clone()),
        "resource-server admin",
        env!("CARGO_PKG_VERSION"),
    );
    Route::new()
        .nest("/", health)
        .at("/metrics", get(metrics_endpoint).data(registry))
        .with(RequestLog::new(http_metrics))
        .boxed()
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
