//! `inventory`, an example service on poem: what a service writes to accept the issuer's
//! tokens with `oauth2-jwt-verifier` and to call another service with its own tokens from
//! `oauth2-token-source`. Its peer is the `orders` example (axum), which calls back.
//!
//! - `GET /livez`: the process runs; `GET /readyz`: the verifier holds the issuer's keys.
//! - `GET /stock` (scope `inventory:read`): who called, as the token says.
//! - `GET /stock/with-orders` (scope `inventory:read`): the same, with the answer of orders'
//!   `GET /orders`, called with this service's own client_credentials token.
//!
//! Every setting comes from the command line or its `INVENTORY_*` environment variable; the
//! README's "Service to service" section runs both examples against a local auth-server.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use oauth2_jwt_verifier::poem::BearerChallenge;
use oauth2_jwt_verifier::{Claims, Readiness, Verifier, VerifierConfig};
use oauth2_token_source::middleware::BearerMiddleware;
use oauth2_token_source::{ClientSecret, Config, Endpoint, TokenRequest, TokenSource};
use poem::http::StatusCode;
use poem::listener::TcpListener;
use poem::web::{Data, Json};
use poem::{get, handler, EndpointExt, IntoResponse, Response, Route, Server};
use reqwest_middleware::ClientWithMiddleware;
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

/// The scope a caller needs for this service's resources.
const READ_SCOPE: &str = "inventory:read";
/// What this service asks the issuer for when it calls orders: orders' scope, in a token
/// whose audience is orders (RFC 8707 `resource`), since orders accepts no other.
const PEER_SCOPE: &str = "orders:read";
const PEER_AUDIENCE: &str = "orders";

/// The settings; `--help` lists them with their variables.
#[derive(Parser, Debug)]
#[command(version, about = "The inventory example service (poem)")]
struct Settings {
    /// The address to listen on.
    #[arg(long, env = "INVENTORY_LISTEN", default_value = "127.0.0.1:8011")]
    listen: SocketAddr,
    /// The issuer whose tokens are accepted and who issues this service's own.
    #[arg(
        long,
        env = "INVENTORY_ISSUER",
        default_value = "http://127.0.0.1:8000"
    )]
    issuer: Url,
    /// The audience a token must name to be accepted here.
    #[arg(long, env = "INVENTORY_AUDIENCE", default_value = "inventory")]
    audience: String,
    /// This service's client id at the issuer.
    #[arg(long, env = "INVENTORY_CLIENT_ID", default_value = "inventory")]
    client_id: String,
    /// A file holding the client secret (a mounted secret); without it the secret is read
    /// from the variable INVENTORY_CLIENT_SECRET. Never a flag: flags show in `ps`.
    #[arg(long, env = "INVENTORY_CLIENT_SECRET_FILE")]
    client_secret_file: Option<PathBuf>,
    /// The orders service's base URL.
    #[arg(
        long,
        env = "INVENTORY_ORDERS_URL",
        default_value = "http://127.0.0.1:8010"
    )]
    orders_url: Url,
}

/// This service's reading of the token beyond the access-token claims: the profile claims the
/// issuer puts in user tokens. A client's own token has none, hence `Option`s (a required
/// field would refuse such tokens as `missing_claim`).
#[derive(Debug, Deserialize)]
struct Caller {
    preferred_username: Option<String>,
    email: Option<String>,
}

/// What the handlers share, as poem request data.
#[derive(Clone)]
struct AppState {
    /// A reqwest client whose requests carry this service's own token.
    orders: ClientWithMiddleware,
    orders_url: Url,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Logs to stdout, coloured only on a terminal; RUST_LOG chooses what (default `info`).
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Settings::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    // One verifier for the process: it fetches the issuer's keys in the background and
    // verifies each token locally, with no call to the issuer per request.
    let verifier = Verifier::start(VerifierConfig::new(
        settings.issuer.clone(),
        settings.audience.clone(),
    ))?;

    // One token source for the process: the token endpoint is found in the issuer's metadata,
    // the token cached and refreshed before it expires, so the issuer sees one request per
    // token lifetime however many calls go out.
    let secret = match &settings.client_secret_file {
        Some(path) => ClientSecret::from_file(path)?,
        None => ClientSecret::from_env("INVENTORY_CLIENT_SECRET")?,
    };
    let tokens = TokenSource::new(
        Config::builder(
            Endpoint::Issuer(settings.issuer.clone()),
            settings.client_id.clone(),
            secret,
        )
        .default_request(
            TokenRequest::new()
                .scope(PEER_SCOPE)
                .resource(PEER_AUDIENCE),
        )
        .build(),
    )?;
    // The middleware puts `Authorization: Bearer …` on every request to the peer (and on none
    // to any other origin), and on a 401 (a token revoked, a key retired) drops the token and
    // tries once more with a new one (once the token is older than a few seconds: a peer that
    // refuses every token does not turn each call into a token request).
    let orders = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
    )
    .with(BearerMiddleware::new(tokens, settings.orders_url.clone()))
    .build();

    let state = AppState {
        orders,
        orders_url: settings.orders_url.join("orders")?,
    };
    // Handlers taking `Claims<Caller>` verify the token with the `Verifier` of the request
    // data; `BearerChallenge` names this service's realm in every RFC 6750 challenge.
    let app = Route::new()
        .at("/livez", get(livez))
        .at("/readyz", get(readyz))
        .at("/stock", get(stock))
        .at("/stock/with-orders", get(stock_with_orders))
        .with(BearerChallenge::default().realm("inventory"))
        .data(verifier)
        .data(state);

    tracing::info!(address = %settings.listen, issuer = %settings.issuer, "inventory listening");
    Server::new(TcpListener::bind(settings.listen))
        .run_with_graceful_shutdown(app, shutdown_signal(), Some(Duration::from_secs(10)))
        .await
        .map_err(|err| anyhow::anyhow!("serving on {}: {err}", settings.listen))?;
    tracing::info!("inventory stopped");
    Ok(())
}

#[handler]
fn livez() -> &'static str {
    "ok"
}

/// 200 once the verifier holds the issuer's keys: until then every token would be refused.
#[handler]
fn readyz(verifier: Data<&Verifier>) -> StatusCode {
    match verifier.readiness() {
        // Failing open on a stale revocation list still serves (every replica would go stale
        // at once); that age is a metric to alert on, not a reason to leave the pool.
        Readiness::Ready | Readiness::ReadyWithStaleRevocations { .. } => StatusCode::OK,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The caller as the verified token names it: the checked claims through `Deref`
/// (`sub`, `client_id`, `scope`), this service's own through `extra`.
fn caller(claims: &Claims<Caller>) -> Value {
    json!({
        "service": "inventory",
        "sub": claims.sub,
        "client_id": claims.client_id,
        "scope": claims.scope.to_string(),
        "username": claims.extra.preferred_username,
        "email": claims.extra.email,
    })
}

/// `GET /stock`. The extractor has verified the token (refusals are RFC 6750 answers before
/// the handler runs); the scope is the handler's to check: 403 `insufficient_scope`.
#[handler]
fn stock(claims: Claims<Caller>) -> poem::Result<Json<Value>> {
    claims.require_scope(READ_SCOPE)?;
    Ok(Json(caller(&claims)))
}

/// `GET /stock/with-orders`: calls orders with this service's own token (not the caller's,
/// which names inventory as its audience and which orders would refuse) and passes its
/// answer on.
#[handler]
async fn stock_with_orders(
    state: Data<&AppState>,
    claims: Claims<Caller>,
) -> poem::Result<Response> {
    claims.require_scope(READ_SCOPE)?;
    let answer = match state.orders.get(state.orders_url.clone()).send().await {
        Ok(answer) => answer,
        Err(err) => {
            // The error names the URL or the token endpoint's refusal, never the token.
            tracing::warn!(error = %err, "calling orders failed");
            return Ok(bad_gateway(json!({"error": "orders_unreachable"})));
        }
    };
    let status = answer.status();
    if !status.is_success() {
        tracing::warn!(%status, "orders refused");
        return Ok(bad_gateway(
            json!({"error": "orders_refused", "status": status.as_u16()}),
        ));
    }
    Ok(match answer.json::<Value>().await {
        Ok(orders) => Json(json!({"caller": caller(&claims), "orders": orders})).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "orders' answer is not JSON");
            bad_gateway(json!({"error": "orders_invalid_answer"}))
        }
    })
}

fn bad_gateway(body: Value) -> Response {
    Json(body)
        .with_status(StatusCode::BAD_GATEWAY)
        .into_response()
}

/// Resolves on SIGTERM (as an orchestrator stops a service) or ctrl-c; the server then stops
/// accepting and lets requests in flight finish, for at most ten seconds.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
