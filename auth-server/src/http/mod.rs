//! The HTTP surface: translates between requests and the modules below, nothing more.

pub mod address;
pub mod credentials;
pub mod discovery;
pub mod error;
pub mod health;
pub mod introspect;
pub mod limits;
pub mod metrics;
pub mod revocations;
pub mod revoke;
pub mod token;

use std::sync::Arc;

use poem::http::Method;
use poem::middleware::Cors;
use poem::{get, Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;
use server_plumbing::telemetry::{metrics_endpoint, ServerMetrics};

use crate::oauth::{Authority, Clock, Credentials, TokenError};
use crate::settings::Settings;
use crate::store::Store;
use crate::tokens::TokenIssuer;

/// What the handlers share.
pub struct AppState {
    /// Every OAuth decision.
    pub authority: Authority,
    /// For readiness and maintenance; the handlers' decisions go through `authority`.
    pub store: Arc<dyn Store>,
    /// The keys in use, for the JWKS and readiness.
    pub tokens: Arc<TokenIssuer>,
    pub clock: Clock,
    pub settings: Settings,
    pub metrics: metrics::Metrics,
    /// The signing-key lifecycle on the store; the maintenance task follows it.
    pub keys: crate::keys::lifecycle::KeyLifecycle,
    /// The clients held in memory (`AUTH_CLIENT_CACHE`); a task of its own reloads them.
    pub clients: Arc<crate::oauth::ClientCache>,
}

/// The client credentials `req` carries, in its Basic header or in the form fields given;
/// shared by `/token`, `/revoke` and `/introspect`.
pub fn client_credentials(
    req: &poem::Request,
    form_id: Option<&str>,
    form_secret: Option<&str>,
) -> Result<Credentials, TokenError> {
    // A header that is not visible ASCII is no Basic credential: it fails as malformed.
    let authorization = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or_default());
    credentials::read(authorization, form_id, form_secret)
}

/// Paths reported by name in request metrics.
pub const ROUTES: &[&str] = &[
    "/token",
    "/revoke",
    "/introspect",
    "/revocations",
    "/.well-known/jwks.json",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/livez",
    "/readyz",
    "/metrics",
    "/docs",
    "/openapi.json",
];

/// RFC 9110 §15.5.6: a 405 names the methods the resource has.
pub fn allowed_methods(path: &str) -> &'static str {
    match path {
        "/token" | "/revoke" | "/introspect" => "POST",
        _ => "GET",
    }
}

pub fn api(
    state: &Arc<AppState>,
) -> OpenApiService<
    (
        token::TokenApi,
        revoke::RevokeApi,
        introspect::IntrospectApi,
        revocations::RevocationsApi,
        discovery::DiscoveryApi,
        health::HealthApi,
    ),
    (),
> {
    OpenApiService::new(
        (
            token::TokenApi(state.clone()),
            revoke::RevokeApi(state.clone()),
            introspect::IntrospectApi(state.clone()),
            revocations::RevocationsApi(state.clone()),
            discovery::DiscoveryApi(state.clone()),
            health::HealthApi(state.clone()),
        ),
        "auth-server",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "OAuth 2.0 authorization server. Tokens are RS256 JWTs (RFC 9068); verify them locally with the keys at /.well-known/jwks.json.",
    )
    .server(state.settings.issuer_str().to_owned())
}

/// The whole app: API, Swagger UI, metrics (unless the admin address serves them), with CORS
/// and the body limit around it.
pub fn app(
    state: Arc<AppState>,
    registry: ServerMetrics,
    http_metrics: server_plumbing::telemetry::HttpMetrics,
) -> impl Endpoint<Output = poem::Response> {
    let service = api(&state);
    let spec = service.spec_endpoint();
    let docs = service.swagger_ui();
    let cors = Cors::new()
        .allow_origins(state.settings.cors_origins.iter().map(String::as_str))
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        // Swagger UI sends X-Requested-With with its token request.
        .allow_headers([
            "authorization",
            "content-type",
            "x-request-id",
            "x-requested-with",
        ])
        .allow_credentials(false)
        .max_age(600);
    let route = Route::new()
        // The limit sits inside the error shaping, so that a 413 is RFC 6749 JSON too.
        .nest(
            "/",
            service
                .with(limits::BodyLimit {
                    max_bytes: state.settings.max_body_bytes,
                    max_form_fields: state.settings.max_form_fields,
                    read_timeout: std::time::Duration::from_secs(state.settings.body_read_timeout),
                })
                .with(error::OAuthErrorShape),
        )
        .nest("/docs", docs)
        .at("/openapi.json", spec);
    // With an admin address, metrics are served there only: the public port is what the
    // Ingress routes, and the series say more about the deployment than a client needs.
    let route = if state.settings.admin_listen.is_none() {
        route.at("/metrics", get(metrics_endpoint).data(registry))
    } else {
        route
    };
    route
        .with(cors)
        .with(server_plumbing::telemetry::RequestLog::new(http_metrics))
}

/// What the admin address serves: `/metrics`, `/livez` and `/readyz`, for scrapers and probes
/// inside the cluster.
pub fn admin_app(
    state: Arc<AppState>,
    registry: ServerMetrics,
    http_metrics: server_plumbing::telemetry::HttpMetrics,
) -> impl Endpoint<Output = poem::Response> {
    let health = OpenApiService::new(
        health::HealthApi(state),
        "auth-server admin",
        env!("CARGO_PKG_VERSION"),
    );
    Route::new()
        .nest("/", health)
        .at("/metrics", get(metrics_endpoint).data(registry))
        .with(server_plumbing::telemetry::RequestLog::new(http_metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_405_names_the_methods_of_its_path() {
        assert_eq!(allowed_methods("/token"), "POST");
        assert_eq!(allowed_methods("/.well-known/jwks.json"), "GET");
    }
}
