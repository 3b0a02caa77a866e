//! axum glue: handlers take [`Claims<X>`] as an extractor and return refusals.
//!
//! The [`BearerLayer`](crate::tower::BearerLayer) verifies the token and leaves its claims in
//! the request extensions; the extractor only picks them up, so a token is verified once per
//! request however many extractors ask. A route without the layer in front answers 500 with
//! a message that says so: that is a mistake in building the service, not the client's,
//! and verifying on the spot would hide it. [`BearerError`] and [`MissingScope`] are
//! responses, so `claims.require_scope("x")?` in a handler answers 403 `insufficient_scope`.
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use oauth2_jwt_verifier::tower::BearerLayer;
//! use oauth2_jwt_verifier::{Claims, MissingScope, Verifier, VerifierConfig};
//!
//! #[derive(Clone, serde::Deserialize)]
//! struct Profile {
//!     email: Option<String>,
//! }
//!
//! async fn me(claims: Claims<Profile>) -> Result<String, MissingScope> {
//!     claims.require_scope("profile")?;
//!     Ok(claims.extra.email.clone().unwrap_or_default())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifierConfig::new("https://issuer.invalid".parse()?, "api");
//! let verifier = Verifier::start(config)?;
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .layer(BearerLayer::new(verifier).with_extra::<Profile>());
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

use axum_core::body::Body;
use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::claims::{Claims, MissingScope};
use crate::http::{BearerError, DEFAULT_REALM};
use crate::tower::http_refusal;

/// The claims the [`BearerLayer`](crate::tower::BearerLayer) put in the request extensions.
/// Its `X` must be this one's (`BearerLayer::with_extra::<X>()`).
impl<S: Send + Sync, X: Clone + Send + Sync + 'static> FromRequestParts<S> for Claims<X> {
    type Rejection = NoBearerLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, NoBearerLayer> {
        parts
            .extensions
            .get::<Claims<X>>()
            .cloned()
            .ok_or(NoBearerLayer)
    }
}

/// The request reached a handler asking for [`Claims<X>`] without passing a
/// [`BearerLayer`](crate::tower::BearerLayer) of the same `X`: a 500, since the service is
/// built wrong.
#[derive(Clone, Copy, Debug, thiserror::Error)]
#[error("no BearerLayer with this claims type guards this route")]
pub struct NoBearerLayer;

impl IntoResponse for NoBearerLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// The RFC 6750 answer, in the default realm (a `BearerLayer` in front names its own).
impl IntoResponse for BearerError {
    fn into_response(self) -> Response {
        http_refusal(&self, DEFAULT_REALM).map(Body::new)
    }
}

/// 403 `insufficient_scope` (RFC 6750 §3.1).
impl IntoResponse for MissingScope {
    fn into_response(self) -> Response {
        BearerError::from(self).into_response()
    }
}
