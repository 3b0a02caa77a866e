//! What the auth-server and the resource-server share as servers, and services embedding the
//! libraries do not need: the accept loop with its limits, request logging and metrics, the health-check client, the
//! settings layers, and the JSON bodies with their OpenAPI derives.
//!
//! The libraries a service embeds are `oauth2-jwt-verifier` (validating tokens) and
//! `oauth2-token-source` (obtaining them); this crate depends on poem, hyper, prometheus and
//! tracing-subscriber so that they need not.

pub mod healthcheck;
pub mod serve;
pub mod settings;
pub mod telemetry;
pub mod wire;
