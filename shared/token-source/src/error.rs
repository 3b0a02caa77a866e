//! One error type for every way a token can fail to arrive, cheap to clone because one failed
//! token request answers every caller that waited on it.

use std::sync::Arc;
use std::time::Duration;

/// Why no token could be had.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token endpoint refused with an RFC 6749 §5.2 error (`invalid_client`,
    /// `invalid_scope`, `invalid_target`, …).
    #[error("the token endpoint refused ({status}): {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    OAuth {
        /// The HTTP status.
        status: u16,
        /// The `error` code.
        error: String,
        /// The `error_description`, when given.
        description: Option<String>,
    },
    /// The token endpoint is overloaded or unavailable (429 or 503) and stayed so through the
    /// retries; `retry_after` is what it last asked for.
    #[error("the token endpoint is unavailable ({status}); retry after {retry_after:?}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The last `Retry-After`, when given in seconds; a longer one than an hour reads as
        /// one hour.
        retry_after: Option<Duration>,
    },
    /// Any other answer that is not a token.
    #[error("the token endpoint answered {status} without an OAuth error")]
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// A 200 answer that is not an RFC 6749 §5.1 bearer token response.
    #[error("the token endpoint's answer is not a bearer token response: {0}")]
    InvalidResponse(String),
    /// The issuer's metadata (RFC 8414) could not be had or is not valid.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// Connecting, sending or reading failed, or the request timed out.
    #[error("the token request failed: {0}")]
    Transport(#[source] Arc<reqwest::Error>),
    /// The task making the token request ended before it answered (the runtime is shutting
    /// down).
    #[error("the token request was interrupted")]
    Interrupted,
    /// The configuration is not usable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<reqwest::Error> for Error {
    fn from(error: reqwest::Error) -> Self {
        Self::Transport(Arc::new(error))
    }
}
