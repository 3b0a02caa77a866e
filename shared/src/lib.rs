//! What the auth-server and every service that accepts its tokens must agree on.
//!
//! The auth-server mints RFC 9068 access tokens; any Rust service can check them locally with
//! [`Verifier`], which learns the signing keys once through the issuer's RFC 8414 metadata and
//! JWKS, and never calls the auth-server per request.
//!
//! Protecting a poem-openapi route takes a security scheme, the [`Verifier`] as request data and
//! [`http::BearerChallenge`] around the routes so that a missing token gets its RFC 6750 challenge:
//!
//! ```no_run
//! use poem::{listener::TcpListener, EndpointExt, Route, Server};
//! use poem_openapi::{OpenApi, OpenApiService, SecurityScheme, payload::PlainText};
//! use shared::{http::{check_bearer, BearerChallenge, BearerError}, AccessClaims, Verifier, VerifierConfig};
//!
//! #[derive(SecurityScheme)]
//! #[oai(ty = "bearer", checker = "check_bearer")]
//! struct Token(AccessClaims);
//!
//! struct Api;
//!
//! #[OpenApi]
//! impl Api {
//!     #[oai(path = "/reports", method = "get")]
//!     async fn reports(&self, token: Token) -> poem::Result<PlainText<String>> {
//!         token.0.require_scope("reports:read").map_err(|missing| BearerError::from(missing).into_poem())?;
//!         Ok(PlainText(format!("reports for {}", token.0.sub)))
//!     }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifierConfig::new("https://auth.example.com".parse()?, "api");
//! let verifier = Verifier::start(config)?;
//! let app = Route::new()
//!     .nest("/", OpenApiService::new(Api, "reports", "1.0"))
//!     .with(BearerChallenge)
//!     .data(verifier);
//! Server::new(TcpListener::bind("127.0.0.1:3000")).run(app).await?;
//! # Ok(()) }
//! ```

pub mod claims;
pub mod http;
pub mod serve;
pub mod settings;
pub mod telemetry;
pub mod verifier;
pub mod wire;

pub use claims::{AccessClaims, Audience, MissingScope, Scope, ACCESS_TOKEN_TYP};
pub use verifier::{KeySetState, Verifier, VerifierConfig, VerifyError};
