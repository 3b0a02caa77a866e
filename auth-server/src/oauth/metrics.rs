//! What the token endpoint's answers are counted by, as an interface the core owns: the server
//! wires it to its Prometheus metrics, and the core needs to know nothing of them.

use super::error::TokenError;
use crate::store::GrantType;

/// Receives one call per token request answered.
pub trait Recorder: Send + Sync {
    /// Tokens were issued through `grant`.
    fn issued(&self, grant: GrantType);
    /// The request was refused with `error`; `grant` is `None` when the request named no grant
    /// type this server knows.
    fn refused(&self, grant: Option<GrantType>, error: &TokenError);
}

/// Counts nothing: for tools and tests that run the core without metrics.
pub struct NoRecorder;

impl Recorder for NoRecorder {
    fn issued(&self, _: GrantType) {}
    fn refused(&self, _: Option<GrantType>, _: &TokenError) {}
}
