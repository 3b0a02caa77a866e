//! The resource server's HTTP surface. Every protected route takes a [`UserToken`]: the
//! verifier from `oauth2-jwt-verifier` checks it locally, with no call to the auth-server.

pub mod health;
pub mod items;
pub mod users_me;

use oauth2_jwt_verifier::poem::check_bearer;
use oauth2_jwt_verifier::AccessClaims;
use poem_openapi::SecurityScheme;

/// What the OpenAPI document says the token URL is until [`swagger`] puts the configured one in:
/// poem-openapi fixes it at compile time.
pub const TOKEN_URL_PLACEHOLDER: &str = "http://token-url.invalid/token";

/// An access token from the auth-server, verified locally (RFC 6750 bearer).
#[derive(SecurityScheme)]
#[oai(
    ty = "oauth2",
    flows(password(token_url = "http://token-url.invalid/token")),
    checker = "check_bearer"
)]
pub struct UserToken(pub AccessClaims);

pub const ROUTES: &[&str] = &[
    "/users/me",
    "/items",
    "/livez",
    "/readyz",
    "/metrics",
    "/docs",
    "/openapi.json",
];

/// The OpenAPI document and the Swagger UI page, with the run-time token URL put in.
pub fn swagger(spec: &str, html: &str, token_url: &str) -> (String, String) {
    let escaped = serde_json::to_string(token_url).unwrap_or_default();
    let escaped = escaped.trim_matches('"');
    (
        spec.replace(TOKEN_URL_PLACEHOLDER, escaped),
        html.replace(TOKEN_URL_PLACEHOLDER, escaped),
    )
}
