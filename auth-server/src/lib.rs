//! The auth-server library: everything but argument parsing, so that tests can start the real
//! server on an ephemeral port. See ARCHITECTURE.md for the map.

pub mod cli;
pub mod http;
pub mod keys;
pub mod oauth;
pub mod passwords;
pub mod settings;
pub mod startup;
pub mod store;
pub mod tokens;

pub use settings::Settings;
pub use startup::Application;
