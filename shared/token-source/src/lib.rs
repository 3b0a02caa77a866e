//! Access tokens for services that call other services: the OAuth 2.0 `client_credentials`
//! grant (RFC 6749 §4.4), cached and refreshed so that callers never wait on the issuer in the
//! steady state, and the issuer sees one request per token lifetime however busy the service.
//!
//! - One token per [`TokenRequest`] (scope, RFC 8707 `resource` or `audience`), handed out as
//!   an [`AccessToken`]: a reference-counted string whose `Debug` prints `***`. Each distinct
//!   request keeps a cache slot for the life of the source: build requests from the service's
//!   configuration, never from input it receives.
//! - Refreshed ahead of expiry, lazily: once a jittered margin of its lifetime remains (so
//!   that a fleet does not refresh at one instant), the first call starts the request for the
//!   next token in a task of its own and is answered with the current one, as are the calls
//!   while that request runs. Nothing runs between calls. A failed refresh leaves the token in
//!   service until it expires.
//! - Single flight: however many callers wait, one request per key is in flight.
//! - 429 and 503 are retried after their `Retry-After` (read in seconds, at most one hour);
//!   a longer wait than [`Config::max_retry_wait`] ends the request with
//!   [`Error::Unavailable`], and callers without a usable token get that error without a
//!   request until the wait is over. RFC 6749 §5.2 refusals such as `invalid_client` come
//!   back as [`Error::OAuth`] at once.
//! - [`TokenSource::invalidate`] after an API answered 401 drops the token only if it is still
//!   the cached one, so a burst of 401s makes one new request, and only if it was fetched at
//!   least [`Config::min_invalidate_interval`] ago (default 5 s), so that an API refusing
//!   every token does not turn each call into a token request.
//! - The client secret ([`ClientSecret`]) from a value, an environment variable or a file,
//!   sent with `client_secret_basic`, never logged. Zeroized on drop covers the secret value
//!   itself: the `Authorization` header value or the form body built from it for each token
//!   request are ordinary buffers, freed without zeroizing.
//! - The secret goes only to an `https` token endpoint (or plain `http` on a loopback host),
//!   unless [`ConfigBuilder::allow_http`] says otherwise; the issuer and the discovered
//!   `token_endpoint` are held to the same rule.
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
//! - `reqwest-middleware`: [`middleware::BearerMiddleware`] adds the header to the requests of
//!   a `reqwest_middleware::ClientWithMiddleware` that go to the one origin (scheme, host,
//!   port) it is built for, and on a 401 retries once with a new token; requests elsewhere go
//!   out without it.
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
