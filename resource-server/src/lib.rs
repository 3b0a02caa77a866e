//! The resource server: a thin user of the `oauth2-jwt-verifier` library. Tokens are checked locally with
//! keys fetched from the auth-server's JWKS; the auth-server is never called per request.

pub mod http;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use startup::Application;
