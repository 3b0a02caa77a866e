//! System tests: each starts its own servers on ephemeral ports and talks HTTP to them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod bad_input;
mod client_credentials;
mod discovery;
mod examples;
mod fails_closed;
mod file_modes;
mod hostile_tokens;
mod integrations;
mod introspection;
mod lifecycle;
mod limits;
mod operations;
mod redis_cluster;
mod redis_outage;
mod redis_sentinel;
mod redis_tls;
mod refresh;
mod replicas;
mod revocation;
mod revocation_end_to_end;
mod revocation_feed;
mod revocation_reach;
mod rotation;
mod swagger_ui;
mod throttle;
mod token_password;
mod token_source;
