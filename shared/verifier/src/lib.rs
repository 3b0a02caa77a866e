//! Validate OAuth 2.0 JWT access tokens (RFC 9068) locally, against the keys the issuer
//! publishes as a JWKS.

pub mod claims;
#[cfg(feature = "poem")]
pub mod poem;
mod verifier;

pub use claims::{
    AccessClaims, Audience, Claims, InvalidScope, MissingScope, NoExtra, Scope, ACCESS_TOKEN_TYP,
};
pub use verifier::*;
