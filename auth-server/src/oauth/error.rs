//! The one error of the core's decisions (RFC 6749 §5.2), at its lowest floor so that client
//! authentication, the throttle and the grants all speak it without importing each other.
//! `http::error` alone turns it into a response; the conversions below say how each lower
//! layer's failures reach a client.

use crate::passwords::PasswordError;
use crate::store::StoreError;

/// Token endpoint errors (RFC 6749 §5.2). `Display` is the wire code.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid_request")]
    InvalidRequest(&'static str),
    #[error("invalid_client")]
    InvalidClient,
    #[error("invalid_grant")]
    InvalidGrant(&'static str),
    #[error("unauthorized_client")]
    UnauthorizedClient,
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope")]
    InvalidScope,
    /// RFC 8707 §2: the requested resource is not one the client may have tokens for.
    #[error("invalid_target")]
    InvalidTarget,
    /// Too many failed logins: `429` (RFC 6585 §4) with `Retry-After`, `retry_after` in
    /// seconds. The code is RFC 6749 §5.2's `invalid_grant`, as the token endpoint has no other
    /// for credentials it will not check now; `slow_down` belongs to RFC 8628's device flow.
    #[error("invalid_grant")]
    Throttled { retry_after: u64 },
    /// The store or the password pool cannot take the request now (503).
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable { retry_after: u64 },
    #[error("server_error")]
    Internal(#[from] anyhow::Error),
}

impl TokenError {
    /// The `error_description` sent to the client.
    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidRequest(why) | Self::InvalidGrant(why) => why,
            Self::InvalidClient => "client authentication failed",
            Self::UnauthorizedClient => "the client may not use this grant type",
            Self::UnsupportedGrantType => {
                "grant_type must be password, client_credentials or refresh_token"
            }
            Self::InvalidScope => "the requested scope is invalid or exceeds what may be granted",
            Self::InvalidTarget => "the requested resource is not allowed for this client",
            Self::Throttled { .. } => "too many failed attempts; retry later",
            Self::TemporarilyUnavailable { .. } => {
                "the server cannot handle the request now; retry later"
            }
            Self::Internal(_) => "internal error",
        }
    }
}

impl From<StoreError> for TokenError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %err, "store unavailable");
                Self::TemporarilyUnavailable { retry_after: 5 }
            }
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<PasswordError> for TokenError {
    fn from(err: PasswordError) -> Self {
        match err {
            PasswordError::Busy => Self::TemporarilyUnavailable { retry_after: 1 },
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

impl From<crate::keys::KeyError> for TokenError {
    fn from(err: crate::keys::KeyError) -> Self {
        Self::Internal(anyhow::Error::new(err))
    }
}
