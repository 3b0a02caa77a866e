//! The RFC 6750 answers, written once for every framework.
//!
//! Whether a refusal is a 400, 401, 403 or 503, which error code and challenge it carries,
//! and how a request's `Authorization` header is read are protocol rules, not framework
//! rules: the poem, tower, axum and tonic integrations all render the same [`BearerError`],
//! so that a service answers alike whichever of them it is built on. This module holds no
//! framework type, so it costs nothing to the default features.

use crate::claims::MissingScope;
use crate::verifier::VerifyError;

/// The realm a challenge names unless the integration is told another (RFC 6750 §3).
pub const DEFAULT_REALM: &str = "api";

/// How long a client should wait before retrying when keys or revocations are unavailable
/// (the `Retry-After` of a 503, RFC 9110 §10.2.3), in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 5;

/// The JSON body of every refusal (RFC 6750 §3, in the RFC 6749 §5.2 error shape).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "poem-openapi", derive(poem_openapi::Object))]
pub struct ErrorResponse {
    /// The error code: `invalid_request`, `invalid_token`, `insufficient_scope` or
    /// `temporarily_unavailable`.
    pub error: String,
    /// What went wrong, for a developer to read.
    #[cfg_attr(feature = "poem-openapi", oai(skip_serializing_if_is_none))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// Why a request to a protected resource is refused (RFC 6750 §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// No bearer token at all: a bare challenge, no error code (§3.1).
    #[error("a bearer token is required")]
    Missing,
    /// The Authorization header is there but is not a usable bearer credential (§2.1).
    #[error("the Authorization header is malformed")]
    InvalidRequest,
    /// The verifier refused the token; keys or revocations being unavailable is a 503.
    #[error("{0}")]
    Invalid(VerifyError),
    /// The token lacks a scope the resource needs.
    #[error("the token lacks the scope {needed}")]
    InsufficientScope {
        /// The scope the resource needs.
        needed: String,
    },
    /// No user stands behind the token (for example a client_credentials token on /users/me).
    #[error("this resource needs a token issued to a user")]
    NotAUser,
}

/// A missing scope is RFC 6750 §3.1 `insufficient_scope`.
impl From<MissingScope> for BearerError {
    fn from(missing: MissingScope) -> Self {
        Self::InsufficientScope {
            needed: missing.needed,
        }
    }
}

impl From<VerifyError> for BearerError {
    fn from(err: VerifyError) -> Self {
        Self::Invalid(err)
    }
}

impl BearerError {
    /// The `WWW-Authenticate` value for this refusal in the default realm.
    pub fn challenge(&self) -> String {
        self.challenge_in(DEFAULT_REALM)
    }

    /// The one `WWW-Authenticate` value for this refusal (RFC 6750 §3), naming `realm`.
    pub fn challenge_in(&self, realm: &str) -> String {
        let realm = quoted(realm);
        match self {
            Self::Missing => format!(r#"Bearer realm="{realm}""#),
            _ if self.is_unavailable() => format!(r#"Bearer realm="{realm}""#),
            Self::InsufficientScope { needed } => format!(
                r#"Bearer realm="{realm}", error="insufficient_scope", error_description="{}", scope="{}""#,
                quoted(&self.to_string()),
                quoted(needed)
            ),
            _ => format!(
                r#"Bearer realm="{realm}", error="{}", error_description="{}""#,
                self.code().unwrap_or("invalid_request"),
                quoted(&self.to_string())
            ),
        }
    }

    /// The RFC 6750 §3.1 error code; `None` for a request that carried no token at all.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::Missing => None,
            _ if self.is_unavailable() => Some("temporarily_unavailable"),
            Self::InvalidRequest => Some("invalid_request"),
            Self::Invalid(_) => Some("invalid_token"),
            Self::InsufficientScope { .. } | Self::NotAUser => Some("insufficient_scope"),
        }
    }

    /// The HTTP status: 400, 401, 403, or 503 when the verifier cannot judge tokens now.
    pub fn status(&self) -> u16 {
        match self {
            _ if self.is_unavailable() => 503,
            Self::InvalidRequest => 400,
            Self::Missing | Self::Invalid(_) => 401,
            Self::InsufficientScope { .. } | Self::NotAUser => 403,
        }
    }

    /// Not the client's fault: the signing keys, or (failing closed) a current revocation
    /// list, are not available. Answered 503 with `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Invalid(VerifyError::KeysUnavailable | VerifyError::RevocationsUnavailable)
        )
    }

    /// The gRPC status code: 16 `UNAUTHENTICATED` for a missing or refused token, 7
    /// `PERMISSION_DENIED` for a missing scope, 14 `UNAVAILABLE` when the verifier cannot
    /// judge tokens now.
    pub fn grpc_code(&self) -> i32 {
        match self {
            _ if self.is_unavailable() => 14,
            Self::Missing | Self::InvalidRequest | Self::Invalid(_) => 16,
            Self::InsufficientScope { .. } | Self::NotAUser => 7,
        }
    }

    /// The JSON body: `error` and `error_description`.
    pub fn body(&self) -> ErrorResponse {
        ErrorResponse {
            error: self.code().unwrap_or("invalid_request").to_owned(),
            error_description: Some(self.to_string()),
        }
    }

    /// [`BearerError::body`] serialized.
    pub fn body_json(&self) -> String {
        serde_json::to_string(&self.body()).unwrap_or_default()
    }
}

/// A challenge parameter is a quoted-string; quotes and backslashes are dropped rather than
/// escaped, since the texts here never need them, and so is anything but visible ASCII and
/// space (RFC 6750 §3: the realm, error description and scope are `%x20-21 / %x23-5B /
/// %x5D-7E`), so that a realm or scope given by the service can never make the header value
/// invalid and the challenge go missing.
fn quoted(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(c, ' ' | '!' | '#'..='[' | ']'..='~'))
        .collect()
}

/// The bearer token of a request, from the values of its `Authorization` headers (RFC 6750
/// §2.1): `Ok(None)` when there is none; [`BearerError::InvalidRequest`] when there are
/// several, or the one there is not `Bearer` (any case) followed by one space-free
/// `b64token`. Another scheme (`Basic`, …) counts as no bearer token.
pub fn bearer_token<'a, I>(values: I) -> Result<Option<&'a str>, BearerError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut values = values.into_iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::InvalidRequest);
    }
    let value = std::str::from_utf8(value).map_err(|_| BearerError::InvalidRequest)?;
    let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return if scheme.is_empty() || scheme.bytes().any(|b| !b.is_ascii_graphic()) {
            Err(BearerError::InvalidRequest)
        } else {
            Ok(None)
        };
    }
    let credential = credential.trim_start_matches(' ');
    if is_b64token(credential) {
        Ok(Some(credential))
    } else {
        Err(BearerError::InvalidRequest)
    }
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (RFC 6750 §2.1).
///
/// Every byte of every bearer token passes through here, twice in the poem integration: a
/// table lookup per byte, folded without an early exit so that the compiler can vectorise it
/// (a profile of `/users/me` put the per-byte search of the punctuation list at 3 to 5% of the
/// resource server's time).
fn is_b64token(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .fold(true, |all, b| all & B64TOKEN_BYTES[usize::from(b)])
}

/// The bytes a b64token's body may hold.
static B64TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6750 §2.1: the table admits exactly the b64token characters, `=` only at the end.
    #[test]
    fn b64token_admits_exactly_its_grammar_rfc6750_2_1() {
        for b in 0..=255_u8 {
            let allowed = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            let text = format!("a{}b", char::from(b));
            let expected = allowed && b.is_ascii();
            assert_eq!(is_b64token(&text), expected, "byte {b:#x}");
        }
        assert!(is_b64token("abc=="));
        assert!(!is_b64token("a=b"));
        assert!(!is_b64token("=="));
        assert!(!is_b64token(""));
    }

    fn token(values: &[&'static str]) -> Result<Option<&'static str>, BearerError> {
        bearer_token(values.iter().map(|value| value.as_bytes()))
    }

    /// RFC 6750 §3: the challenge's quoted strings hold visible ASCII and spaces only, so a
    /// realm or scope with a line break, a quote or a non-ASCII letter still gives a valid
    /// header value instead of no challenge at all.
    #[test]
    fn challenge_parameters_keep_to_the_quoted_string_grammar_rfc6750_3() {
        let challenge = BearerError::from(MissingScope {
            needed: "a\r\nb\"c é".into(),
        })
        .challenge_in("or\nders\u{7f}");
        assert!(
            challenge.starts_with(r#"Bearer realm="orders""#),
            "{challenge}"
        );
        assert!(challenge.contains(r#"scope="abc ""#), "{challenge}");
        assert!(challenge.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn challenges_follow_rfc6750_3() {
        assert_eq!(BearerError::Missing.challenge(), r#"Bearer realm="api""#);
        assert_eq!(
            BearerError::Missing.challenge_in("orders"),
            r#"Bearer realm="orders""#
        );
        let invalid = BearerError::Invalid(VerifyError::Expired).challenge();
        assert!(invalid.contains(r#"error="invalid_token""#), "{invalid}");
        let revoked = BearerError::Invalid(VerifyError::Revoked);
        assert_eq!((revoked.status(), revoked.grpc_code()), (401, 16));
        let unknown = BearerError::Invalid(VerifyError::RevocationsUnavailable);
        assert_eq!(unknown.challenge(), r#"Bearer realm="api""#);
        assert_eq!(unknown.code(), Some("temporarily_unavailable"));
        assert_eq!((unknown.status(), unknown.grpc_code()), (503, 14));
        let scope = BearerError::from(MissingScope {
            needed: "items:read".into(),
        });
        assert_eq!((scope.status(), scope.grpc_code()), (403, 7));
        let challenge = scope.challenge();
        assert!(
            challenge.contains(r#"error="insufficient_scope""#)
                && challenge.contains(r#"scope="items:read""#)
        );
        let bad = BearerError::InvalidRequest.challenge();
        assert!(bad.contains(r#"error="invalid_request""#), "{bad}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&BearerError::Missing.body_json()).unwrap()
                ["error"],
            "invalid_request"
        );
    }

    #[test]
    fn authorization_header_is_read_as_rfc6750_2_1_says() {
        assert_eq!(token(&[]).unwrap(), None);
        assert_eq!(
            token(&["Bearer abc.def-_~+/=="]).unwrap(),
            Some("abc.def-_~+/==")
        );
        assert_eq!(token(&["bEaReR abc"]).unwrap(), Some("abc"));
        assert_eq!(token(&["Basic dXNlcjpwYXNz"]).unwrap(), None);
        for malformed in [
            &["Bearer"][..],
            &["Bearer "],
            &["Bearer a b"],
            &["Bearer a=b"],
            &["Bearer ä"],
            &["Bearer a", "Bearer b"],
            &[""],
        ] {
            assert_eq!(
                token(malformed),
                Err(BearerError::InvalidRequest),
                "{malformed:?}"
            );
        }
    }
}
