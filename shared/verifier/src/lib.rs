//! Validate OAuth 2.0 JWT access tokens (RFC 9068) locally, against the keys the issuer
//! publishes as a JWKS: no call to the issuer per request.
//!
//! A [`Verifier`] finds the issuer's keys through its metadata (RFC 8414
//! `/.well-known/oauth-authorization-server`, or `/.well-known/openid-configuration` when the
//! former answers 404), keeps them fresh in the background as `Cache-Control` says, and checks
//! each token's signature, header and claims. Clones share everything; build one per issuer.
//!
//! # Quick start
//!
//! ```no_run
//! use oauth2_jwt_verifier::{Verifier, VerifierConfig};
//!
//! # async fn example(headers: &reqwest::header::HeaderMap) -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifierConfig::new("https://auth.example.com".parse()?, "orders-api");
//! // Starts the key refresher and the revocation poller on the current tokio runtime.
//! let verifier = Verifier::start(config)?;
//!
//! // Per request: the bearer token of the `Authorization` header, read as RFC 6750 §2.1 says
//! // (one header, scheme in any case, a b64token); the framework integrations do this for you.
//! let values = headers.get_all("authorization").iter().map(|value| value.as_bytes());
//! let token = oauth2_jwt_verifier::http::bearer_token(values)?.unwrap_or_default();
//! let claims = verifier.verify(token).await?;
//! claims.require_scope("orders:read")?;
//! println!("{} through {}", claims.sub, claims.client_id);
//! # Ok(())
//! # }
//! ```
//!
//! [`Verifier::readiness`] tells a readiness probe when the first keys have arrived.
//!
//! # Custom claims
//!
//! [`Verifier::verify_claims`] reads the payload of a verified token into the service's own
//! type as well, and returns [`Claims`]: the checked [`AccessClaims`] (to which it
//! dereferences) and `extra`. A claim the type requires and the token lacks refuses the token
//! as [`VerifyError::MissingClaim`]; the type is read only from tokens that verified.
//!
//! ```no_run
//! use oauth2_jwt_verifier::{Claims, Verifier};
//!
//! #[derive(serde::Deserialize)]
//! struct MyClaims {
//!     tenant: String,
//!     #[serde(default)]
//!     roles: Vec<String>,
//! }
//!
//! # async fn example(verifier: Verifier, token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let claims: Claims<MyClaims> = verifier.verify_claims::<MyClaims>(token).await?;
//! let admin = claims.extra.roles.iter().any(|role| role == "admin");
//! println!("{} of {} (admin: {admin})", claims.sub, claims.extra.tenant);
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration
//!
//! [`VerifierConfig`] is built with [`VerifierConfig::builder`], one setter per setting;
//! [`VerifierConfigBuilder::build`] checks the settings against each other and reads the CA
//! file, answering a [`ConfigError`] that names what is wrong. [`VerifierConfig::new`] is the
//! short form with every default.
//!
//! ```no_run
//! use std::time::Duration;
//! use oauth2_jwt_verifier::{Verifier, VerifierConfig};
//!
//! # fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifierConfig::builder("https://auth.internal".parse()?, "orders-api")
//!     // A token must name at least one of these audiences.
//!     .audiences(["orders-api", "billing-api"])
//!     // The issuer's certificate comes from a private CA.
//!     .ca_file("/etc/ssl/private-ca.pem")
//!     .leeway(Duration::from_secs(10))
//!     .build()?;
//! let verifier = Verifier::start(config)?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Which certificates are trusted
//!
//! The verifier's own client trusts the roots built into the crate (the Mozilla set), the
//! roots of the operating system's store (so that a CA bundle installed in the host or the
//! container image counts without code), and those of [`VerifierConfigBuilder::ca_file`].
//! A service that needs more (a proxy, client certificates) gives its own `reqwest::Client`
//! to [`VerifierConfigBuilder::http_client`]; the verifier then uses it as it is: redirects
//! follow that client's policy (the verifier's own follows none), its roots are the only
//! ones, and a CA file is refused with it. [`VerifierConfig::fetch_timeout`] still applies
//! to each request.
//!
//! # Guarantees
//!
//! - RS256 only, whatever the token or the key says; `typ` must be `at+jwt` (RFC 9068 §4);
//!   `crit` is refused; `iss` and `aud` are checked, `exp` and `nbf` with a leeway of at most
//!   a minute ([`verify_with`] holds every rule, in one place).
//! - A token naming an unknown `kid` causes at most one fetch per cooldown, shared by every
//!   caller ([`VerifierConfig::unknown_kid_cooldown`]).
//! - The key set's `Cache-Control: max-age` is honoured between
//!   [`VerifierConfig::min_refresh`] and [`VerifierConfig::max_refresh`].
//! - While the issuer is down the keys held keep serving, for at most
//!   [`VerifierConfig::max_stale`] past their freshness; then every token is refused as
//!   [`VerifyError::KeysUnavailable`] until a fetch succeeds.
//! - The issuer's revocation feed, when its metadata advertises one, is polled every
//!   [`VerifierConfig::revocation_poll`] and checked on every token, cached ones included.
//! - Tokens that verified are remembered by SHA-256 ([`VerifierConfig::token_cache_capacity`]);
//!   a hit is judged on `exp` again and the cache is emptied whenever the keys change.
//!
//! # Features
//!
//! The framework integrations sit behind features, so that a service pulls in only its own
//! framework; they share the RFC 6750 answers of [`http`] (always built, no framework crate):
//!
//! - `poem`: a `Claims<X>` extractor, RFC 6750 answers as poem responses and the challenge
//!   middleware; `poem-openapi` adds the security scheme checkers and the documented refusals.
//! - `tower`: a `tower::Layer` for any `http` service (hyper, axum, tonic) that verifies the
//!   bearer token and answers refusals itself, the HTTP or the gRPC way.
//! - `axum`: a `Claims<X>` extractor and `IntoResponse` for the refusals.
//! - `tonic`: the refusals as `tonic::Status`.
//! - `metrics`: the verifier's metrics through the `metrics` facade.
//! - `prometheus`: the verifier's metrics as a collector for a `prometheus::Registry`.

#![deny(missing_docs)]

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

/// The package README's examples, compiled as doc tests so that they cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

pub use claims::{
    AccessClaims, Audience, Claims, InvalidScope, MissingScope, NoExtra, Scope, ACCESS_TOKEN_TYP,
};
pub use http::BearerError;
pub use verifier::*;
