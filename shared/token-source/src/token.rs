//! What callers hold: a token that clones for the price of a reference count and never prints,
//! and the key a token is cached under.

use std::fmt;
use std::sync::Arc;

/// An access token (RFC 6749 §1.4), to be sent as `Authorization: Bearer …` (RFC 6750 §2.1).
///
/// Cloning costs one reference count; `Debug` prints `AccessToken(***)`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    pub(crate) fn new(value: &str) -> Self {
        Self(Arc::from(value))
    }

    /// The token itself.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// `Bearer <token>`, the value of an Authorization header (RFC 6750 §2.1).
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `self` is this very token: the same allocation, or the same text.
    pub(crate) fn is(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

/// What a token is asked for; the source caches one token per distinct request.
///
/// ```
/// use oauth2_token_source::TokenRequest;
/// let request = TokenRequest::new().scope("items:read").resource("https://items.example");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TokenRequest {
    /// The `scope` parameter (RFC 6749 §3.3), space-separated; `None` asks for the client's
    /// default scopes.
    pub scope: Option<String>,
    /// The `resource` parameter (RFC 8707 §2): the URI of the API the token is for.
    pub resource: Option<String>,
    /// The `audience` parameter some issuers take instead of `resource`.
    pub audience: Option<String>,
}

impl TokenRequest {
    /// The request with no parameters: the client's default scopes and audience.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for `scope` (space-separated scope tokens).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Asks for a token for the API at `resource` (RFC 8707).
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Asks for a token for `audience` (the non-standard `audience` parameter).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    pub(crate) fn form(&self) -> Vec<(&'static str, &str)> {
        let mut form = vec![("grant_type", "client_credentials")];
        let optional = [
            ("scope", &self.scope),
            ("resource", &self.resource),
            ("audience", &self.audience),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                form.push((name, value.as_str()));
            }
        }
        form
    }
}
