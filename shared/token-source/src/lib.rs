//! Access tokens for services that call other services: the OAuth 2.0 `client_credentials`
//! grant (RFC 6749 §4.4), cached and refreshed so that callers never wait on the issuer in the
//! steady state, and the issuer sees one request per token lifetime however busy the service.
//!
//! - One token per [`TokenRequest`] (scope, RFC 8707 `resource` or `audience`), handed out as
//!   an [`AccessToken`]: a reference-counted string whose `Debug` prints `***`.
//! - Refreshed in the background when a jittered margin of its lifetime remains, so that a
//!   fleet does not refresh at one instant; a failed refresh leaves the token in service until
//!   it expires.
//! - Single flight: however many callers wait, one request per key is in flight.
//! - 429 and 503 are retried after their `Retry-After`; RFC 6749 §5.2 refusals such as
//!   `invalid_client` come back as [`Error::OAuth`] at once.
//! - [`TokenSource::invalidate`] after an API answered 401 drops the token only if it is still
//!   the cached one, so a burst of 401s makes one new request.
//! - The client secret ([`ClientSecret`]) from a value, an environment variable or a file,
//!   sent with `client_secret_basic`, never logged, zeroized on drop.
//!
//! # Quick start
//!
//! ```no_run
//! use oauth2_token_source::{ClientSecret, Config, Endpoint, TokenRequest, TokenSource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder(
//!     Endpoint::Issuer("https://auth.example".parse()?),
//!     "orders",
//!     ClientSecret::from_file("/run/secrets/orders-client-secret")?,
//! )
//! .build();
//! let tokens = TokenSource::new(config)?;
//!
//! let http = reqwest::Client::new();
//! let token = tokens.token().await?;
//! let response = http
//!     .get("https://items.example/items")
//!     .bearer_auth(token.secret())
//!     .send()
//!     .await?;
//! if response.status() == reqwest::StatusCode::UNAUTHORIZED {
//!     // The API no longer takes this token (revoked, keys rotated): the next call gets another.
//!     tokens.invalidate(&token);
//! }
//!
//! // Another scope or API: cached apart.
//! let write = tokens
//!     .token_for(&TokenRequest::new().scope("items:write").resource("https://items.example"))
//!     .await?;
//! # let _ = write;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `reqwest-middleware`: [`middleware::BearerMiddleware`] adds the header to every request of
//!   a `reqwest_middleware::ClientWithMiddleware` and on a 401 retries once with a new token.
//! - `tower`: [`tower::BearerLayer`] does the same for any `tower::Service` of
//!   `http::Request`s, invalidating the token on a 401.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
mod fetch;
#[cfg(feature = "reqwest-middleware")]
pub mod middleware;
mod secret;
mod source;
mod token;
#[cfg(feature = "tower")]
pub mod tower;

pub use config::{ClientAuth, Config, ConfigBuilder, Endpoint};
pub use error::Error;
pub use secret::ClientSecret;
pub use source::TokenSource;
pub use token::{AccessToken, TokenRequest};
