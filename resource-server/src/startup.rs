//! Builds the resource server and binds before serving; the verifier starts fetching keys in
//! the background, so the server starts even when the auth-server is not up yet.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use oauth2_jwt_verifier::poem::BearerChallenge;
use oauth2_jwt_verifier::{Verifier, VerifierConfig};
use poem::web::Html;
use poem::{endpoint::make_sync, get, handler, EndpointExt, IntoResponse, Route};
use poem_openapi::OpenApiService;
use prometheus::Registry;
use server_plumbing::serve::{self, ConnectionLimits, ConnectionMetrics};

use crate::http::{self, health::HealthApi, items::ItemsApi, users_me::UsersApi};
use crate::Settings;

pub struct Application {
    listener: tokio::net::TcpListener,
    app: poem::endpoint::BoxEndpoint<'static>,
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

        let registry = Registry::new();
        let http_metrics = server_plumbing::telemetry::HttpMetrics::new(&registry, http::ROUTES)?;
        verifier.register_metrics(&registry)?;
        let connection_metrics = ConnectionMetrics::new(&registry)?;

        let service = OpenApiService::new((UsersApi, ItemsApi, HealthApi(verifier.clone())), "resource-server", env!("CARGO_PKG_VERSION"))
            .description("An API that verifies the auth-server's access tokens locally. Authorize with a user's name and password, then try /users/me.");
        let (spec, docs) = http::swagger(
            &service.spec(),
            &service.swagger_ui_html(),
            &settings.token_url(),
        );
        let app = Route::new()
            .nest("/", service.with(BearerChallenge::default()))
            .at("/docs", make_sync(move |_| Html(docs.clone())))
            .at(
                "/openapi.json",
                make_sync(move |_| spec.clone().with_content_type("application/json")),
            )
            .at("/metrics", get(render_metrics).data(registry))
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
            .with(server_plumbing::telemetry::RequestLog::new(http_metrics))
            .boxed();

        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let local_addr = listener
            .local_addr()
            .context("the listener has no address")?;
        Ok(Self {
            listener,
            app,
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
        serve::serve(
            self.listener,
            self.app,
            self.limits,
            Some(self.connection_metrics),
            stop,
            self.shutdown_timeout,
        )
        .await
    }
}

/// The request metrics and the verifier's own (verifications by outcome, key fetches, key set
/// size and age, read at scrape time).
#[handler]
fn render_metrics(registry: poem::web::Data<&Registry>) -> impl IntoResponse {
    server_plumbing::telemetry::render(&registry)
        .with_content_type("text/plain; version=0.0.4; charset=utf-8")
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
