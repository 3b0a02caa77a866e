//! The resource server's `GET /users/me` served through the verifier's tower layer instead of
//! its poem glue, for the benchmark's rows that compare the two in the same run
//! (`users_me_*_tower` against `users_me_*`, see BENCHMARKS.md).
//!
//! The comparison only means something if both sides do the same work, so this server copies
//! the resource server wherever the work is not the integration under test:
//!
//! - the settings: `resource_server::Settings` read from the same `RS_*` variables, file and
//!   flags, and the verifier built from its `verifier_config()` (issuer, audience, key refresh,
//!   token cache, revocation feed);
//! - the connections: hyper's HTTP/1.1 server with the resource server's header read timeout,
//!   head size and header count limits, the same cap on open connections, and the open and
//!   accepted connections counted;
//! - the per-request log: a request id taken or made and echoed, a span, one log line under
//!   the same `RUST_LOG` filter and log format, and the same request counter and latency
//!   histogram (`server_plumbing::telemetry::RequestLog`, which is poem middleware, redone as
//!   tower middleware over the same `HttpMetrics` and request id functions);
//! - the answers: the same JSON bytes and `content-type` for a user's token, and the same
//!   RFC 6750 refusals, 403 `insufficient_scope` for a token with no user behind it.
//!
//! What differs is what is measured: poem, poem-openapi and `check_bearer` on one side; axum,
//! `BearerLayer` and the `Claims` extractor on the other. Each renders the body its own way
//! (poem-openapi through a JSON value, this one with serde directly).

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use clap::Parser;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use oauth2_jwt_verifier::tower::BearerLayer;
use oauth2_jwt_verifier::{BearerError, Claims, Readiness, Verifier};
use prometheus::{IntCounter, IntGauge, Registry};
use resource_server::Settings;
use serde::Serialize;
use server_plumbing::telemetry::{request_id, HttpMetrics, REQUEST_ID};
use tower::{Service, ServiceExt};
use tracing::Instrument;

#[derive(Parser, Debug)]
#[command(
    name = "users-me-tower",
    about = "GET /users/me through the verifier's tower layer, configured as the resource server is"
)]
struct Cli {
    /// TOML settings file; RS_* environment variables override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: resource_server::settings::Overrides,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings =
        Settings::load_with(cli.config.as_deref(), &cli.overrides).map_err(anyhow::Error::msg)?;
    server_plumbing::telemetry::init_logging(settings.log_format == "json");
    let config = settings
        .verifier_config()
        .context("configuring the token verifier")?;
    let verifier = Verifier::start(config).context("starting the token verifier")?;

    let registry = Registry::new();
    let metrics = HttpMetrics::new(&registry, resource_server::http::ROUTES)?;
    verifier.register_metrics(&registry)?;
    let connections = ConnectionGauges::new(&registry)?;

    let ready = verifier.clone();
    let app = Router::new()
        .route(
            "/users/me",
            get(users_me).route_layer(BearerLayer::new(verifier)),
        )
        .route("/readyz", get(move || readyz(ready.clone())))
        .route(
            "/metrics",
            get(move || {
                let text = server_plumbing::telemetry::render(&registry);
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        );
    let app = RequestLog {
        inner: app,
        metrics,
    };

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    tracing::info!(addr = %settings.listen, "users-me-tower listening");
    serve(listener, app, &settings, connections).await;
    Ok(())
}

/// The resource server's `Me`, its fields in the order poem-openapi writes them (sorted: its
/// JSON object is a sorted map), so that both answer the same bytes.
#[derive(Serialize)]
struct Me {
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    full_name: Option<String>,
    scope: String,
    username: String,
}

/// As the resource server's `/users/me`: a client's own token has no user and is refused.
async fn users_me(claims: Claims) -> Result<Response<Body>, BearerError> {
    let claims = claims.access;
    let username = claims.preferred_username.ok_or(BearerError::NotAUser)?;
    let me = Me {
        email: claims.email,
        full_name: claims.name,
        scope: claims.scope.to_string(),
        username,
    };
    let mut response = Response::new(Body::from(serde_json::to_vec(&me).unwrap_or_default()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(response)
}

/// Ready while the verifier may judge tokens: the runner waits for it before the first row.
async fn readyz(verifier: Verifier) -> (StatusCode, &'static str) {
    match verifier.readiness() {
        Readiness::Ready | Readiness::ReadyWithStaleRevocations { .. } => {
            (StatusCode::OK, r#"{"status":"ok"}"#)
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#),
    }
}

// ------------------------------------------------------------------------------ request log

/// `server_plumbing::telemetry::RequestLog` as a tower service around the whole app, with the
/// same request id rule and the same `HttpMetrics` (names, labels, buckets, routes, and the
/// bounded `method` label).
#[derive(Clone)]
struct RequestLog<S> {
    inner: S,
    metrics: HttpMetrics,
}

impl<S, B> Service<Request<B>> for RequestLog<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let request_id = request_id(req.headers());
        let labels = self.metrics.labels(req.uri().path(), req.method());
        let span = tracing::info_span!(
            "request",
            request_id = %request_id.as_ref().and_then(|id| id.to_str().ok()).unwrap_or_default(),
            method = %req.method(),
            route = self.metrics.route_label(labels),
        );
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        Box::pin(
            async move {
                let mut response = inner.call(req).await?;
                let status = response.status();
                let elapsed = started.elapsed();
                metrics.record(labels, status, elapsed);
                tracing::info!(
                    status = status.as_u16(),
                    latency_ms = elapsed.as_secs_f64() * 1000.0,
                    "request"
                );
                if let Some(id) = request_id {
                    response.headers_mut().insert(REQUEST_ID, id);
                }
                Ok::<_, Infallible>(response)
            }
            .instrument(span),
        )
    }
}

// ------------------------------------------------------------------------------ connections

/// Two of `server_plumbing::serve::ConnectionMetrics`'s gauges: the work per connection (the
/// timed-out count only moves when a client stalls).
#[derive(Clone)]
struct ConnectionGauges {
    open: IntGauge,
    accepted: IntCounter,
}

impl ConnectionGauges {
    fn new(registry: &Registry) -> prometheus::Result<Self> {
        let open = IntGauge::new("http_connections_open", "HTTP connections open now")?;
        let accepted = IntCounter::new("http_connections_total", "HTTP connections accepted")?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(accepted.clone()))?;
        Ok(Self { open, accepted })
    }
}

/// `server_plumbing::serve::serve` with a tower service in place of a poem endpoint: the same
/// hyper settings and connection cap, until SIGTERM or Ctrl-C.
async fn serve<S>(
    listener: tokio::net::TcpListener,
    app: S,
    settings: &Settings,
    gauges: ConnectionGauges,
) where
    S: Service<Request<hyper::body::Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let limits = settings.connection_limits();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(
            limits
                .max_header_bytes
                .max(server_plumbing::serve::MIN_HEADER_BYTES),
        )
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let stop = resource_server::startup::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            () = &mut stop => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req| app.clone().oneshot(req));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let gauges = gauges.clone();
        tokio::spawn(async move {
            gauges.accepted.inc();
            gauges.open.inc();
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
            gauges.open.dec();
            drop(permit);
        });
    }
    drop(listener);
    let grace = Duration::from_secs(settings.shutdown_timeout);
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}
