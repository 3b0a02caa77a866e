//! `orders`, an example service on axum: what a service writes to accept the issuer's tokens
//! with `oauth2-jwt-verifier` and to call another service with its own tokens from
//! `oauth2-token-source`. Its peer is the `inventory` example (poem), which calls back.
//!
//! - `GET /livez`: the process runs; `GET /readyz`: the verifier holds the issuer's keys.
//! - `GET /orders` (scope `orders:read`): who called, as the token says.
//! - `GET /orders/with-stock` (scope `orders:read`): the same, with the answer of inventory's
//!   `GET /stock`, called with this service's own client_credentials token.
//!
//! Every setting comes from the command line or its `ORDERS_*` environment variable; the
//! README's "Service to service" section runs both examples against a local auth-server.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use oauth2_jwt_verifier::tower::BearerLayer;
use oauth2_jwt_verifier::{Claims, Readiness, Verifier, VerifierConfig};
use oauth2_token_source::middleware::BearerMiddleware;
use oauth2_token_source::{ClientSecret, Config, Endpoint, TokenRequest, TokenSource};
use reqwest_middleware::ClientWithMiddleware;
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

/// The scope a caller needs for this service's resources.
const READ_SCOPE: &str = "orders:read";
/// What this service asks the issuer for when it calls inventory: inventory's scope, in a
/// token whose audience is inventory (RFC 8707 `resource`), since inventory accepts no other.
const PEER_SCOPE: &str = "inventory:read";
const PEER_AUDIENCE: &str = "inventory";

/// The settings; `--help` lists them with their variables.
#[derive(Parser, Debug)]
#[command(version, about = "The orders example service (axum)")]
struct Settings {
    /// The address to listen on.
    #[arg(long, env = "ORDERS_LISTEN", default_value = "127.0.0.1:8010")]
    listen: SocketAddr,
    /// The issuer whose tokens are accepted and who issues this service's own.
    #[arg(long, env = "ORDERS_ISSUER", default_value = "http://127.0.0.1:8000")]
    issuer: Url,
    /// The audience a token must name to be accepted here.
    #[arg(long, env = "ORDERS_AUDIENCE", default_value = "orders")]
    audience: String,
    /// This service's client id at the issuer.
    #[arg(long, env = "ORDERS_CLIENT_ID", default_value = "orders")]
    client_id: String,
    /// A file holding the client secret (a mounted secret); without it the secret is read
    /// from the variable ORDERS_CLIENT_SECRET. Never a flag: flags show in `ps`.
    #[arg(long, env = "ORDERS_CLIENT_SECRET_FILE")]
    client_secret_file: Option<PathBuf>,
    /// The inventory service's base URL.
    #[arg(
        long,
        env = "ORDERS_INVENTORY_URL",
        default_value = "http://127.0.0.1:8011"
    )]
    inventory_url: Url,
}

/// This service's reading of the token beyond the access-token claims: the profile claims the
/// issuer puts in user tokens. A client's own token has none, hence `Option`s (a required
/// field would refuse such tokens as `missing_claim`).
#[derive(Clone, Debug, Deserialize)]
struct Caller {
    preferred_username: Option<String>,
    email: Option<String>,
}

/// What the handlers share; cheap to clone.
#[derive(Clone)]
struct AppState {
    verifier: Verifier,
    /// A reqwest client whose requests carry this service's own token.
    inventory: ClientWithMiddleware,
    stock_url: Url,
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
        None => ClientSecret::from_env("ORDERS_CLIENT_SECRET")?,
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
    let inventory = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
    )
    .with(BearerMiddleware::new(
        tokens,
        settings.inventory_url.clone(),
    ))
    .build();

    let state = AppState {
        verifier: verifier.clone(),
        inventory,
        stock_url: settings.inventory_url.join("stock")?,
    };
    // The layer verifies the token of every request to these routes before the handler runs
    // and answers refusals itself, as RFC 6750 says: 401 `invalid_token` with the challenge,
    // a bare challenge when no token came, 403 `insufficient_scope` without `orders:read`.
    let guarded = Router::new()
        .route("/orders", get(orders))
        .route("/orders/with-stock", get(orders_with_stock))
        .route_layer(
            BearerLayer::new(verifier)
                .with_extra::<Caller>()
                .require_scope(READ_SCOPE)
                .realm("orders"),
        );
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .with_state(state);

    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|err| anyhow::anyhow!("binding {}: {err}", settings.listen))?;
    tracing::info!(address = %settings.listen, issuer = %settings.issuer, "orders listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("orders stopped");
    Ok(())
}

/// 200 once the verifier holds the issuer's keys: until then every token would be refused.
async fn readyz(State(state): State<AppState>) -> StatusCode {
    match state.verifier.readiness() {
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
        "service": "orders",
        "sub": claims.sub,
        "client_id": claims.client_id,
        "scope": claims.scope.to_string(),
        "username": claims.extra.preferred_username,
        "email": claims.extra.email,
    })
}

/// `GET /orders`: the layer has verified the token and checked the scope already.
async fn orders(claims: Claims<Caller>) -> Json<Value> {
    Json(caller(&claims))
}

/// `GET /orders/with-stock`: calls inventory with this service's own token (not the
/// caller's, which names orders as its audience and which inventory would refuse) and
/// passes its answer on.
async fn orders_with_stock(State(state): State<AppState>, claims: Claims<Caller>) -> Response {
    let answer = match state.inventory.get(state.stock_url.clone()).send().await {
        Ok(answer) => answer,
        Err(err) => {
            // The error names the URL or the token endpoint's refusal, never the token.
            tracing::warn!(error = %err, "calling inventory failed");
            return bad_gateway(json!({"error": "inventory_unreachable"}));
        }
    };
    let status = answer.status();
    if !status.is_success() {
        tracing::warn!(%status, "inventory refused");
        return bad_gateway(json!({"error": "inventory_refused", "status": status.as_u16()}));
    }
    match answer.json::<Value>().await {
        Ok(stock) => Json(json!({"caller": caller(&claims), "inventory": stock})).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "inventory's answer is not JSON");
            bad_gateway(json!({"error": "inventory_invalid_answer"}))
        }
    }
}

fn bad_gateway(body: Value) -> Response {
    (StatusCode::BAD_GATEWAY, Json(body)).into_response()
}

/// Resolves on SIGTERM (as an orchestrator stops a service) or ctrl-c; the server then stops
/// accepting and lets requests in flight finish.
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
