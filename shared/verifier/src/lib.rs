//! Validate OAuth 2.0 JWT access tokens (RFC 9068) locally, against the keys the issuer
//! publishes as a JWKS.
//!
//! The framework integrations sit behind features, so that a service pulls in only its own
//! framework: `poem` (and `poem-openapi`), `tower` (any `http` service: hyper, axum, tonic),
//! `axum` and `tonic`. They share the RFC 6750 answers of [`http`].

#[cfg(feature = "axum")]
pub mod axum;
pub mod claims;
pub mod http;
#[cfg(feature = "poem")]
pub mod poem;
#[cfg(feature = "tonic")]
pub mod tonic;
#[cfg(feature = "tower")]
pub mod tower;
mod verifier;

pub use claims::{
    AccessClaims, Audience, Claims, InvalidScope, MissingScope, NoExtra, Scope, ACCESS_TOKEN_TYP,
};
pub use http::BearerError;
pub use verifier::*;
