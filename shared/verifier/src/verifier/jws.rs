//! Every rule a token's header and claims must meet, checked in one pass over its three parts.
//!
//! The header rules are an allowlist: `alg` must be RS256 whatever the key says (RFC 8725
//! §3.1), `typ` must name an access token (RFC 9068 §4), a `crit` header is refused because
//! this verifier implements no extension (RFC 7515 §4.1.11), and the key is found by `kid`
//! only. The claim rules follow, with what differs between callers (audiences, who judges
//! `exp`) set in [`TokenRules`].
//!
//! [`verify_with`] is the whole check over a key set the caller holds, synchronous and without
//! I/O. The fetching [`super::Verifier`] calls it, and so does the issuer for its own tokens
//! (introspection, revocation) over the keys it publishes: a rule written here holds for every
//! party that accepts a token, so none can be talked into what another refuses.
//!
//! `jsonwebtoken::decode` rebuilds the RSA key from its modulus and exponent on every call and
//! parses the header twice and the claims twice; on `/users/me` with a new token per request
//! that was a third of the verification. Here the keys are parsed once per key set
//! ([`super::KeySet`] holds aws-lc-rs `ParsedPublicKey`s), the header and the claims are each
//! decoded once, and the claims are judged by the rules `jsonwebtoken::Validation` applies
//! (RFC 7519 §4.1, RFC 9068 §4), each of which has a test below and in the hostile-token suite.

use std::any::TypeId;
use std::borrow::Cow;
use std::time::Duration;

use aws_lc_rs::signature::ParsedPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{KeySet, VerifierConfig, VerifyError, MAX_LEEWAY};
use crate::claims::{AccessClaims, NoExtra, ACCESS_TOKEN_TYP};

/// The largest RSA signature RS256 keys here produce: 8192 bits.
const MAX_SIGNATURE_BYTES: usize = 1024;

/// A compact JWS cut at its dots, not yet decoded.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    /// `header.payload`: the bytes the signature covers (RFC 7515 §5.2).
    signing_input: &'a str,
    signature: &'a str,
}

impl<'a> Parts<'a> {
    /// Exactly three non-empty-header parts separated by dots (RFC 7519 §7.2 step 1).
    fn split(token: &'a str) -> Result<Self, VerifyError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(VerifyError::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(VerifyError::Malformed)?;
        if payload.contains('.') || header.is_empty() {
            return Err(VerifyError::Malformed);
        }
        Ok(Self {
            header,
            payload,
            signing_input,
            signature,
        })
    }

    /// The header's JSON, for [`Header::parse`] to borrow from.
    fn header_json(&self) -> Result<Vec<u8>, VerifyError> {
        URL_SAFE_NO_PAD
            .decode(self.header)
            .map_err(|_| VerifyError::Malformed)
    }

    /// The RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) over the signing input.
    fn verify_signature(&self, key: &ParsedPublicKey) -> Result<(), VerifyError> {
        let mut signature = [0u8; MAX_SIGNATURE_BYTES];
        let length = URL_SAFE_NO_PAD
            .decode_slice(self.signature, &mut signature)
            .map_err(|_| VerifyError::BadSignature)?;
        let signature = signature.get(..length).ok_or(VerifyError::BadSignature)?;
        key.verify_sig(self.signing_input.as_bytes(), signature)
            .map_err(|_| VerifyError::BadSignature)
    }

    /// The signature first, then the claims: nothing of an unsigned payload is parsed.
    fn verify(
        &self,
        key: &ParsedPublicKey,
        rules: &TokenRules,
        now: u64,
    ) -> Result<AccessClaims, VerifyError> {
        self.verify_signature(key)?;
        let claims = self.claims()?;
        rules.check(&claims, now)?;
        Ok(claims)
    }

    /// The claims, decoded once; call only after the signature verified.
    fn claims(&self) -> Result<AccessClaims, VerifyError> {
        let json = URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| VerifyError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| VerifyError::Malformed)
    }
}

/// The JOSE header members the verifier looks at; any others are ignored (`jku`, `x5u` and
/// `jwk` in particular are never used, RFC 8725 §3.10). A member given twice is malformed.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    /// Present at all: the token needs extensions this verifier does not implement.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// True for a member that is there at all, whatever its value: `"crit": null` is a `crit`
/// header as much as any other (RFC 7515 §4.1.11 allows no value that would mean "none").
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

impl<'a> Header<'a> {
    fn parse(json: &'a [u8]) -> Result<Self, VerifyError> {
        serde_json::from_slice(json).map_err(|_| VerifyError::Malformed)
    }

    /// The header rules, in this order: `alg` from our allowlist (RS256 only), `typ` an access
    /// token's (`at+jwt`, or its full media type, any case: RFC 9068 §2.1 and RFC 7515
    /// §4.1.9), no `crit`, and a `kid`, which is returned. `jku`, `x5u` and `jwk` are never
    /// looked at.
    fn check(&self) -> Result<&str, VerifyError> {
        if self.alg != "RS256" {
            return Err(VerifyError::UnsupportedAlgorithm);
        }
        let typ_ok = self.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYP)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(VerifyError::WrongType);
        }
        if self.crit {
            return Err(VerifyError::UnknownCritical);
        }
        self.kid.as_deref().ok_or(VerifyError::MissingKid)
    }
}

/// Which audiences a token may be meant for (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AudiencePolicy {
    /// `aud` must name this audience: a resource server accepting tokens meant for it.
    One(String),
    /// `aud` must name at least one of these: a service answering for several audiences. An
    /// empty list accepts no token.
    AnyOf(Vec<String>),
    /// Any audience: the issuer checking its own tokens, which it mints for every audience it
    /// serves.
    Any,
}

/// Who judges `exp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A token past `exp` plus the leeway is refused as [`VerifyError::Expired`].
    Checked,
    /// The claims of an expired token are returned, for a caller that must still know whose
    /// token it is (revocation answers for it, introspection calls it inactive) and compares
    /// `exp` with its own clock.
    LeftToCaller,
}

/// Every claim rule a token must meet besides its header and signature: issuer, audience, time
/// with a leeway, and the largest token worth parsing. Built once, used for every token; by
/// [`super::Verifier`] from its [`VerifierConfig`], or by a caller that holds its own keys and
/// calls [`verify_with`].
#[derive(Clone, Debug)]
pub struct TokenRules {
    /// Expected `iss`, without a trailing slash.
    issuer: String,
    audience: AudiencePolicy,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub(super) leeway: u64,
    expiry: Expiry,
    max_token_bytes: usize,
}

impl TokenRules {
    /// Tokens of `issuer` (compared without a trailing slash, as tokens carry it) for
    /// `audience`, with the defaults of [`VerifierConfig::new`]: a leeway of
    /// [`super::DEFAULT_LEEWAY`], `exp` checked, tokens up to [`super::DEFAULT_MAX_TOKEN_BYTES`].
    pub fn new(issuer: &str, audience: AudiencePolicy) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience,
            leeway: super::DEFAULT_LEEWAY.min(MAX_LEEWAY).as_secs(),
            expiry: Expiry::Checked,
            max_token_bytes: super::DEFAULT_MAX_TOKEN_BYTES,
        }
    }

    /// The rules `config` asks for: its issuer, its audiences (a token must name at least
    /// one), its leeway, its size bound.
    pub fn from_config(config: &VerifierConfig) -> Self {
        let audience = match config.audiences.as_slice() {
            [one] => AudiencePolicy::One(one.clone()),
            several => AudiencePolicy::AnyOf(several.to_vec()),
        };
        Self::new(config.issuer.as_str(), audience)
            .with_leeway(config.leeway)
            .with_max_token_bytes(config.max_token_bytes)
    }

    /// Clock skew allowed on `exp` and `nbf`, capped at a minute.
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.min(MAX_LEEWAY).as_secs();
        self
    }

    /// Who judges `exp`: the rules ([`Expiry::Checked`], the default) or the caller.
    #[must_use]
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    /// Longer tokens are refused as [`VerifyError::TooLarge`] before any parsing.
    #[must_use]
    pub fn with_max_token_bytes(mut self, max_token_bytes: usize) -> Self {
        self.max_token_bytes = max_token_bytes;
        self
    }

    /// Whether `token` is too large to look at; checked first by [`verify_with`], and by the
    /// verifier before its cache so that no digest of a huge token is ever computed.
    pub(super) fn too_large(&self, token: &str) -> bool {
        token.len() > self.max_token_bytes
    }

    /// `exp` (RFC 7519 §4.1.4, unless left to the caller) and `nbf` (§4.1.5) with the leeway,
    /// then `iss` (RFC 9068 §4 and RFC 8725 §3.8) and `aud` (§4.1.3, RFC 8725 §3.9), in
    /// jsonwebtoken's order. `exp`, `iss`, `aud` and `sub` are required by [`AccessClaims`]
    /// itself.
    fn check(&self, claims: &AccessClaims, now: u64) -> Result<(), VerifyError> {
        if self.expiry == Expiry::Checked && claims.exp < now.saturating_sub(self.leeway) {
            return Err(VerifyError::Expired);
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(self.leeway))
        {
            return Err(VerifyError::NotYetValid);
        }
        if claims.iss != self.issuer {
            return Err(VerifyError::WrongIssuer);
        }
        let audience_ok = match &self.audience {
            AudiencePolicy::One(audience) => claims.aud.contains(audience),
            AudiencePolicy::AnyOf(audiences) => audiences
                .iter()
                .any(|audience| claims.aud.contains(audience)),
            AudiencePolicy::Any => true,
        };
        if !audience_ok {
            return Err(VerifyError::WrongAudience);
        }
        Ok(())
    }
}

/// Judges `token` by every rule, over keys the caller holds: size, the header (`alg`, `typ`,
/// `crit`, `kid`), the key named by `kid` in `keys`, the signature, then the claims by
/// `rules` at `now` (seconds since the Unix epoch). No I/O and no cache: this is the check
/// [`super::Verifier`] runs on every token it has not seen, and the one an issuer runs on its
/// own tokens over the keys it publishes. A `kid` not in `keys` is
/// [`VerifyError::UnknownKid`]; the staleness of `keys` is the caller's business.
pub fn verify_with(
    token: &str,
    keys: &KeySet,
    rules: &TokenRules,
    now: u64,
) -> Result<AccessClaims, VerifyError> {
    if rules.too_large(token) {
        return Err(VerifyError::TooLarge);
    }
    let parts = Parts::split(token)?;
    let header_json = parts.header_json()?;
    let header = Header::parse(&header_json)?;
    let kid = header.check()?;
    let key = keys.get(kid).ok_or(VerifyError::UnknownKid)?;
    parts.verify(key, rules, now)
}

/// The payload of `token`, which verified, read into the service's own type `X`: a payload
/// `X` cannot be read from (a required claim missing, or of another type) is
/// [`VerifyError::MissingClaim`]. [`NoExtra`] reads nothing, so that `verify_claims::<NoExtra>`
/// costs what `verify` does. Called only after [`verify_with`] or a cache hit accepted the
/// token, so that `X` never sees an unsigned payload.
pub(super) fn extra_claims<X: DeserializeOwned + 'static>(token: &str) -> Result<X, VerifyError> {
    let missing = |_| VerifyError::MissingClaim;
    if TypeId::of::<X>() == TypeId::of::<NoExtra>() {
        return serde_json::from_slice(b"{}").map_err(missing);
    }
    let payload = Parts::split(token)?.payload;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&json).map_err(missing)
}

#[cfg(test)]
mod tests;
