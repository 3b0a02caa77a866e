//! Why a token is refused, and the `outcome` label each refusal is counted under.
//!
//! The refusals, their messages and their labels are written once, in the `refusals!` list
//! below, which declares the enum, the one `match` that names each variant and the list of all
//! of them: a new refusal cannot be added without a label, nor left out of the counters that
//! are exported at 0 from the start.

/// Declares [`VerifyError`] from one list of `variant => "label"` with their attributes.
macro_rules! refusals {
    ($($(#[$attr:meta])* $variant:ident => $label:literal,)+) => {
        /// Why a token was refused. The `Display` text is safe to send as `error_description`.
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        #[non_exhaustive]
        pub enum VerifyError {
            $($(#[$attr])* $variant,)+
        }

        impl VerifyError {
            /// Every refusal, in declaration order (which is also each one's discriminant).
            pub(super) const ALL: &'static [VerifyError] = &[$(VerifyError::$variant,)+];

            /// A short snake_case name (`bad_signature`, `expired`, …): the `outcome` label of
            /// `oauth2_jwt_verifier_verifications_total`, and safe to log.
            pub fn name(&self) -> &'static str {
                match self {
                    $(VerifyError::$variant => $label,)+
                }
            }
        }
    };
}

refusals! {
    /// Not three base64url parts of JSON, or a header or claims that do not parse.
    #[error("the token is not a well-formed JWT")]
    Malformed => "malformed",
    /// Longer than [`super::VerifierConfig::max_token_bytes`]; refused before any parsing.
    #[error("the token is too large")]
    TooLarge => "too_large",
    /// `alg` is not RS256 (RFC 8725 §3.1).
    #[error("only RS256 is accepted")]
    UnsupportedAlgorithm => "unsupported_algorithm",
    /// `typ` is not `at+jwt` (RFC 9068 §4).
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType => "wrong_type",
    /// The header names no `kid`.
    #[error("the token names no key")]
    MissingKid => "missing_kid",
    /// The `kid` is not in the key set, even after a fetch.
    #[error("the token names an unknown key")]
    UnknownKid => "unknown_kid",
    /// The signature does not verify with the key named.
    #[error("the signature does not verify")]
    BadSignature => "bad_signature",
    /// Past `exp` plus the leeway (RFC 7519 §4.1.4).
    #[error("the token has expired")]
    Expired => "expired",
    /// Before `nbf` minus the leeway (RFC 7519 §4.1.5).
    #[error("the token is not valid yet")]
    NotYetValid => "not_yet_valid",
    /// `iss` is not the configured issuer (RFC 9068 §4).
    #[error("the token was issued by another issuer")]
    WrongIssuer => "wrong_issuer",
    /// `aud` names none of the configured audiences (RFC 7519 §4.1.3).
    #[error("the token is meant for another audience")]
    WrongAudience => "wrong_audience",
    /// A claim the verifier or the service's claims type needs is missing or of the wrong type.
    #[error("the token lacks a required claim")]
    MissingClaim => "missing_claim",
    /// The header has `crit`: this verifier implements no extension (RFC 7515 §4.1.11).
    #[error("the token uses a critical header extension that is not understood")]
    UnknownCritical => "unknown_critical",
    /// Not the client's fault: no key set could be fetched yet, or the one held has been stale
    /// for longer than [`super::VerifierConfig::max_stale`].
    #[error("the issuer's signing keys are not available")]
    KeysUnavailable => "keys_unavailable",
    /// The issuer's revocation feed lists the token, its subject or its client since before
    /// the token was issued.
    #[error("the token has been revoked")]
    Revoked => "revoked",
    /// Not the client's fault: failing closed, the verifier holds no revocation list yet, or
    /// the one held is older than [`super::VerifierConfig::revocation_max_stale`].
    #[error("the issuer's revocation list is not available")]
    RevocationsUnavailable => "revocations_unavailable",
}

/// What one verification ended in: a value of the `outcome` label of
/// `oauth2_jwt_verifier_verifications_total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Ok,
    Refused(VerifyError),
}

impl Outcome {
    /// How many outcomes there are: `ok` and one per refusal.
    pub(super) const COUNT: usize = 1 + VerifyError::ALL.len();

    pub(super) fn of<T>(result: &Result<T, VerifyError>) -> Self {
        match result {
            Ok(_) => Self::Ok,
            Err(refusal) => Self::Refused(refusal.clone()),
        }
    }

    /// Every outcome, each at its [`Outcome::index`].
    #[cfg_attr(
        not(any(feature = "metrics", feature = "prometheus")),
        allow(dead_code)
    )]
    pub(super) fn all() -> impl Iterator<Item = Self> {
        std::iter::once(Self::Ok).chain(VerifyError::ALL.iter().cloned().map(Self::Refused))
    }

    #[cfg_attr(
        not(any(feature = "metrics", feature = "prometheus")),
        allow(dead_code)
    )]
    pub(super) fn label(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused(refusal) => refusal.name(),
        }
    }

    /// Where this outcome sits in [`Outcome::all`], below [`Outcome::COUNT`].
    pub(super) fn index(&self) -> usize {
        match self {
            Self::Ok => 0,
            Self::Refused(refusal) => 1 + refusal.clone() as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_are_distinct_snake_case() {
        let mut names: Vec<_> = Outcome::all().map(|outcome| outcome.label()).collect();
        assert_eq!(names.len(), Outcome::COUNT);
        for name in &names {
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Outcome::COUNT);
        assert_eq!(VerifyError::BadSignature.name(), "bad_signature");
        assert_eq!(VerifyError::KeysUnavailable.name(), "keys_unavailable");
    }

    #[test]
    fn each_outcome_sits_at_its_index() {
        for (position, outcome) in Outcome::all().enumerate() {
            assert_eq!(outcome.index(), position, "{}", outcome.label());
        }
        assert_eq!(
            Outcome::of::<()>(&Err(VerifyError::Expired)).label(),
            "expired"
        );
    }
}
