//! The claims of an RFC 9068 access token, shared so that issuer and verifiers cannot drift apart.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A space-delimited scope (RFC 6749 §3.3), held as a sorted set of tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses the wire form. Each token must be `%x21 / %x23-5B / %x5D-7E` (RFC 6749 §3.3).
    pub fn parse(text: &str) -> Result<Self, InvalidScope> {
        let mut tokens = BTreeSet::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            let valid = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                return Err(InvalidScope);
            }
            tokens.insert(token.to_owned());
        }
        Ok(Self(tokens))
    }

    /// The scope holding `tokens`, taken as they are (not checked against the wire grammar).
    pub fn from_tokens<I: IntoIterator<Item = S>, S: Into<String>>(tokens: I) -> Self {
        Self(tokens.into_iter().map(Into::into).collect())
    }

    /// Whether no scope token is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `token` is granted.
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// Whether every token of `self` is in `other`.
    pub fn is_subset_of(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The tokens, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A scope that breaks the RFC 6749 §3.3 grammar.
#[derive(Debug, thiserror::Error)]
#[error("scope tokens are printable ASCII without spaces, quotes or backslashes")]
pub struct InvalidScope;

/// `aud` is a string or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, sent as a string.
    One(String),
    /// Several audiences, sent as an array.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `audience` is named.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// Claims of an access token (RFC 9068 §2.2), user tokens also carrying profile claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer (RFC 7519 §4.1.1), checked against the configured one.
    pub iss: String,
    /// The subject (RFC 7519 §4.1.2): the user, or the client for a client's own token.
    pub sub: String,
    /// The audiences (RFC 7519 §4.1.3); one of them is a configured one.
    pub aud: Audience,
    /// Expiry, seconds since the Unix epoch (RFC 7519 §4.1.4).
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch (RFC 7519 §4.1.6).
    pub iat: u64,
    /// Not before, seconds since the Unix epoch (RFC 7519 §4.1.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The token's identifier (RFC 7519 §4.1.7), which the revocation feed names.
    pub jti: String,
    /// The client the token was issued to (RFC 9068 §2.2, RFC 8693 §4.3).
    pub client_id: String,
    /// The scope granted (RFC 9068 §2.2.3); empty when absent.
    #[serde(default)]
    pub scope: Scope,
    /// The user's name; present only on tokens issued to a user (password and refresh grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// The user's full name, on user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's e-mail address, on user tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl AccessClaims {
    /// Whether a user stands behind the token, as opposed to a client acting for itself.
    pub fn is_user_token(&self) -> bool {
        self.preferred_username.is_some()
    }

    /// [`MissingScope`] when `needed` is not granted; each integration answers it as its
    /// protocol says (RFC 6750 §3.1 `insufficient_scope` over HTTP: see `http`).
    pub fn require_scope(&self, needed: &str) -> Result<(), MissingScope> {
        if self.scope.contains(needed) {
            Ok(())
        } else {
            Err(MissingScope {
                needed: needed.to_owned(),
            })
        }
    }
}

/// A token lacks a scope that the resource needs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the token lacks the scope {needed}")]
pub struct MissingScope {
    /// The scope the resource needs.
    pub needed: String,
}

/// A token that verified: the access-token claims the verifier checked, and `extra`, the
/// same payload read into the service's own type (custom claims such as roles or a tenant).
/// Dereferences to [`AccessClaims`], so `claims.sub` and `claims.require_scope(…)` work on it.
///
/// `X` is any `Deserialize` type read from the whole payload: it names the claims it wants
/// (registered ones too, if it likes) and ignores the rest, so it must not deny unknown
/// fields. A claim it requires that the token lacks, or has with another type, refuses the
/// token as [`VerifyError::MissingClaim`](crate::VerifyError::MissingClaim). `X` is read only
/// after the signature and the registered claims have been checked, and again from the token
/// on every verification, cache hits included (the cache keeps [`AccessClaims`] alone).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claims<X = NoExtra> {
    /// The registered and RFC 9068 claims, checked by the verifier.
    pub access: AccessClaims,
    /// The service's own reading of the payload.
    pub extra: X,
}

impl<X> std::ops::Deref for Claims<X> {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.access
    }
}

impl<X> Claims<X> {
    /// Claims made by hand, for a service's own tests of code that takes verified claims.
    pub fn new(access: AccessClaims, extra: X) -> Self {
        Self { access, extra }
    }
}

/// No claims beyond [`AccessClaims`]: the default `extra` of [`Claims`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct NoExtra {}

/// The `typ` header value of RFC 9068 access tokens.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_round_trips_sorted_and_deduplicated_rfc6749_3_3() {
        let scope = Scope::parse("write  read read").unwrap();
        assert_eq!(scope.to_string(), "read write");
        assert!(Scope::parse("read").unwrap().is_subset_of(&scope));
    }

    #[test]
    fn scope_rejects_quotes_and_backslashes_rfc6749_3_3() {
        assert!(Scope::parse("a\"b").is_err());
        assert!(Scope::parse("a\\b").is_err());
        assert!(Scope::parse("é").is_err());
    }

    #[test]
    fn audience_is_string_or_array_rfc7519_4_1_3() {
        let one: Audience = serde_json::from_str(r#""api""#).unwrap();
        let many: Audience = serde_json::from_str(r#"["x","api"]"#).unwrap();
        assert!(one.contains("api") && many.contains("api") && !many.contains("y"));
    }
}
