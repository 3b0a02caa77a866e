//! Validate OAuth 2.0 JWT access tokens (RFC 9068) locally, against the keys the issuer
//! publishes as a JWKS.

#![deny(missing_docs)]

pub mod claims;
// The integrations are documented by their owner; the lead removes this allow when merging.
#[allow(missing_docs)]
#[cfg(feature = "poem")]
pub mod poem;
mod verifier;

pub use claims::{
    AccessClaims, Audience, Claims, InvalidScope, MissingScope, NoExtra, Scope, ACCESS_TOKEN_TYP,
};
pub use verifier::*;
