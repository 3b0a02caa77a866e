//! Every rule a token's header and claims must meet, checked in one pass over its three parts.
//!
//! The header rules are an allowlist: `alg` must be RS256 whatever the key says (RFC 8725
//! §3.1), `typ` must name an access token (RFC 9068 §4), a `crit` header is refused because
//! this verifier implements no extension (RFC 7515 §4.1.11), and the key is found by `kid`
//! only. The claim rules follow.
//!
//! `jsonwebtoken::decode` rebuilds the RSA key from its modulus and exponent on every call and
//! parses the header twice and the claims twice; on `/users/me` with a new token per request
//! that was a third of the verification. Here the keys are parsed once per key set
//! ([`super::KeySet`] holds aws-lc-rs `ParsedPublicKey`s), the header and the claims are each
//! decoded once, and the claims are judged by the rules `jsonwebtoken::Validation` applies
//! (RFC 7519 §4.1, RFC 9068 §4), each of which has a test below and in the hostile-token suite.

use std::borrow::Cow;
use std::time::Duration;

use aws_lc_rs::signature::ParsedPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;

use super::{VerifierConfig, VerifyError};
use crate::claims::{AccessClaims, ACCESS_TOKEN_TYP};

/// The largest RSA signature RS256 keys here produce: 8192 bits.
const MAX_SIGNATURE_BYTES: usize = 1024;

/// The most clock skew a configuration may allow on `exp` and `nbf`.
const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// A compact JWS cut at its dots, not yet decoded.
pub(super) struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    /// `header.payload`: the bytes the signature covers (RFC 7515 §5.2).
    signing_input: &'a str,
    signature: &'a str,
}

impl<'a> Parts<'a> {
    /// Exactly three non-empty-header parts separated by dots (RFC 7519 §7.2 step 1).
    pub(super) fn split(token: &'a str) -> Result<Self, VerifyError> {
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
    pub(super) fn header_json(&self) -> Result<Vec<u8>, VerifyError> {
        URL_SAFE_NO_PAD
            .decode(self.header)
            .map_err(|_| VerifyError::Malformed)
    }

    /// The RS256 signature (RSASSA-PKCS1-v1_5 with SHA-256) over the signing input.
    pub(super) fn verify_signature(&self, key: &ParsedPublicKey) -> Result<(), VerifyError> {
        let mut signature = [0u8; MAX_SIGNATURE_BYTES];
        let length = URL_SAFE_NO_PAD
            .decode_slice(self.signature, &mut signature)
            .map_err(|_| VerifyError::BadSignature)?;
        let signature = signature.get(..length).ok_or(VerifyError::BadSignature)?;
        key.verify_sig(self.signing_input.as_bytes(), signature)
            .map_err(|_| VerifyError::BadSignature)
    }

    /// The signature first, then the claims: nothing of an unsigned payload is parsed.
    pub(super) fn verify(
        &self,
        key: &ParsedPublicKey,
        rules: &Rules,
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
pub(super) struct Header<'a> {
    #[serde(borrow)]
    pub(super) alg: Cow<'a, str>,
    #[serde(borrow, default)]
    pub(super) typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub(super) kid: Option<Cow<'a, str>>,
    /// Present at all: the token needs extensions this verifier does not implement.
    #[serde(default)]
    pub(super) crit: Option<serde::de::IgnoredAny>,
}

impl<'a> Header<'a> {
    pub(super) fn parse(json: &'a [u8]) -> Result<Self, VerifyError> {
        serde_json::from_slice(json).map_err(|_| VerifyError::Malformed)
    }

    /// The header rules, in this order: `alg` from our allowlist (RS256 only), `typ` an access
    /// token's (`at+jwt`, or its full media type, any case: RFC 9068 §2.1 and RFC 7515
    /// §4.1.9), no `crit`, and a `kid`, which is returned. `jku`, `x5u` and `jwk` are never
    /// looked at.
    pub(super) fn check(&self) -> Result<&str, VerifyError> {
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
        if self.crit.is_some() {
            return Err(VerifyError::UnknownCritical);
        }
        self.kid.as_deref().ok_or(VerifyError::MissingKid)
    }
}

/// What a token's claims must say, fixed when the verifier is built.
pub(super) struct Rules {
    /// Expected `iss`, without a trailing slash.
    pub(super) issuer: String,
    pub(super) audience: String,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub(super) leeway: u64,
}

impl Rules {
    /// The rules `config` asks for: its issuer without a trailing slash, its audience, and its
    /// leeway capped at [`MAX_LEEWAY`].
    pub(super) fn new(config: &VerifierConfig) -> Self {
        Self {
            issuer: config.issuer.as_str().trim_end_matches('/').to_owned(),
            audience: config.audience.clone(),
            leeway: config.leeway.min(MAX_LEEWAY).as_secs(),
        }
    }

    /// `exp` (RFC 7519 §4.1.4) and `nbf` (§4.1.5) with the leeway, then `iss` (RFC 9068 §4 and
    /// RFC 8725 §3.8) and `aud` (§4.1.3, RFC 8725 §3.9), in jsonwebtoken's order. `exp`,
    /// `iss`, `aud` and `sub` are required by [`AccessClaims`] itself.
    pub(super) fn check(&self, claims: &AccessClaims, now: u64) -> Result<(), VerifyError> {
        if claims.exp < now.saturating_sub(self.leeway) {
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
        if !claims.aud.contains(&self.audience) {
            return Err(VerifyError::WrongAudience);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{Audience, Scope};

    fn claims() -> AccessClaims {
        AccessClaims {
            iss: "https://issuer.example".into(),
            sub: "alice".into(),
            aud: Audience::One("api".into()),
            exp: 1_000,
            iat: 900,
            nbf: None,
            jti: "j".into(),
            client_id: "c".into(),
            scope: Scope::default(),
            preferred_username: None,
            name: None,
            email: None,
        }
    }

    fn rules() -> Rules {
        Rules {
            issuer: "https://issuer.example".into(),
            audience: "api".into(),
            leeway: 30,
        }
    }

    #[test]
    fn exp_counts_with_the_leeway_rfc7519_4_1_4() {
        assert_eq!(rules().check(&claims(), 1_030), Ok(()));
        assert_eq!(rules().check(&claims(), 1_031), Err(VerifyError::Expired));
    }

    #[test]
    fn nbf_counts_with_the_leeway_rfc7519_4_1_5() {
        let mut early = claims();
        early.nbf = Some(530);
        assert_eq!(rules().check(&early, 500), Ok(()));
        assert_eq!(rules().check(&early, 499), Err(VerifyError::NotYetValid));
    }

    #[test]
    fn iss_must_match_exactly_rfc8725_3_8() {
        let mut other = claims();
        other.iss = "https://issuer.example/".into();
        assert_eq!(rules().check(&other, 900), Err(VerifyError::WrongIssuer));
    }

    #[test]
    fn aud_must_name_us_as_string_or_in_an_array_rfc7519_4_1_3() {
        let mut many = claims();
        many.aud = Audience::Many(vec!["other".into(), "api".into()]);
        assert_eq!(rules().check(&many, 900), Ok(()));
        many.aud = Audience::Many(vec!["other".into()]);
        assert_eq!(rules().check(&many, 900), Err(VerifyError::WrongAudience));
        many.aud = Audience::Many(vec![]);
        assert_eq!(rules().check(&many, 900), Err(VerifyError::WrongAudience));
    }

    #[test]
    fn tokens_are_cut_into_exactly_three_parts_rfc7519_7_2() {
        assert!(Parts::split("a.b.c").is_ok());
        assert!(
            Parts::split("a.b.").is_ok(),
            "an empty signature fails later"
        );
        for bad in ["", "a", "a.b", "a.b.c.d", ".b.c", "a..b.c"] {
            assert!(
                matches!(Parts::split(bad), Err(VerifyError::Malformed)),
                "{bad:?}"
            );
        }
    }

    fn header_check(json: &str) -> Result<String, VerifyError> {
        Header::parse(json.as_bytes())?.check().map(str::to_owned)
    }

    #[test]
    fn only_rs256_is_accepted_rfc8725_3_1() {
        for alg in ["none", "HS256", "RS384", "PS256", "ES256", "rs256"] {
            let json = format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k"}}"#);
            assert_eq!(
                header_check(&json),
                Err(VerifyError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
        assert_eq!(
            header_check(r#"{"alg":"RS256","typ":"at+jwt","kid":"k"}"#),
            Ok("k".into())
        );
    }

    #[test]
    fn typ_must_name_an_access_token_rfc9068_4() {
        for typ in ["AT+JWT", "application/at+jwt", "Application/AT+JWT"] {
            let json = format!(r#"{{"alg":"RS256","typ":"{typ}","kid":"k"}}"#);
            assert_eq!(header_check(&json), Ok("k".into()), "{typ}");
        }
        for json in [
            r#"{"alg":"RS256","kid":"k"}"#,
            r#"{"alg":"RS256","typ":"JWT","kid":"k"}"#,
            r#"{"alg":"RS256","typ":"application/jwt","kid":"k"}"#,
        ] {
            assert_eq!(header_check(json), Err(VerifyError::WrongType), "{json}");
        }
    }

    #[test]
    fn any_crit_header_is_refused_rfc7515_4_1_11() {
        for crit in [r#"["exp"]"#, "[]", "{}"] {
            let json = format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"k","crit":{crit}}}"#);
            assert_eq!(
                header_check(&json),
                Err(VerifyError::UnknownCritical),
                "{crit}"
            );
        }
    }

    #[test]
    fn a_token_without_kid_names_no_key() {
        assert_eq!(
            header_check(r#"{"alg":"RS256","typ":"at+jwt"}"#),
            Err(VerifyError::MissingKid)
        );
    }

    #[test]
    fn the_leeway_is_capped_at_a_minute() {
        let mut config = VerifierConfig::new("https://issuer.example/".parse().unwrap(), "api");
        config.leeway = Duration::from_secs(3600);
        let rules = Rules::new(&config);
        assert_eq!(rules.leeway, 60);
        assert_eq!(rules.issuer, "https://issuer.example");
    }

    #[test]
    fn a_header_member_given_twice_is_malformed() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","alg":"none"}"#);
        let token = format!("{header}.e30.sig");
        let json = Parts::split(&token).unwrap().header_json().unwrap();
        assert!(matches!(Header::parse(&json), Err(VerifyError::Malformed)));
    }

    #[test]
    fn escaped_header_strings_are_decoded() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS\u0032\u0035\u0036","kid":"k\"1"}"#);
        let token = format!("{header}.e30.sig");
        let json = Parts::split(&token).unwrap().header_json().unwrap();
        let header = Header::parse(&json).unwrap();
        assert_eq!(header.alg, "RS256");
        assert_eq!(header.kid.as_deref(), Some("k\"1"));
    }

    /// A genuine signature verifies; the same signature with the unused low bits of its last
    /// base64url character set does not (RFC 7515 §2 base64url without padding, canonical), and
    /// a signature longer than any RSA key here is refused without a panic.
    #[test]
    fn only_the_canonical_encoding_of_a_genuine_signature_verifies_rfc7515_2() {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let key = ParsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            spki.as_ref(),
        )
        .unwrap();
        let signing_input = "e30.e30";
        let mut signature = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            signing_input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        let encoded = URL_SAFE_NO_PAD.encode(&signature);
        let genuine = format!("{signing_input}.{encoded}");
        assert_eq!(
            Parts::split(&genuine).unwrap().verify_signature(&key),
            Ok(())
        );

        // 256 bytes take 342 characters; the last carries 2 bits of data and 4 unused ones.
        let last = encoded.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let value = alphabet.find(last).unwrap();
        assert_eq!(
            value & 0b1111,
            0,
            "a canonical encoding leaves the unused bits 0"
        );
        let tweaked_char = alphabet.chars().nth(value | 1).unwrap();
        let tweaked = format!("{}{tweaked_char}", &genuine[..genuine.len() - 1]);
        assert_eq!(
            Parts::split(&tweaked).unwrap().verify_signature(&key),
            Err(VerifyError::BadSignature)
        );

        let long = URL_SAFE_NO_PAD.encode([7u8; MAX_SIGNATURE_BYTES + 1]);
        let token = format!("{signing_input}.{long}");
        assert_eq!(
            Parts::split(&token).unwrap().verify_signature(&key),
            Err(VerifyError::BadSignature)
        );
    }
}
