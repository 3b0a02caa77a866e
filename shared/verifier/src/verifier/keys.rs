//! A parsed key set: built once per JWKS fetch so that a verification only looks a key up and
//! never parses one (an RSA public key parsed per call costs a fifth of the verification).

use std::collections::HashMap;
use std::time::Instant;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse, RSAKeyParameters,
};

/// Verification keys by `kid`, with when they were fetched and how long they stay fresh.
pub struct KeySet {
    keys: HashMap<String, ParsedPublicKey>,
    pub(crate) fetched_at: Instant,
    pub(crate) fresh_for: std::time::Duration,
    /// Past this instant the set is too stale to trust (a key revoked since may still be in
    /// it); set when a fetched set is installed. `None`: no bound, as for keys given by the
    /// embedding service.
    pub(crate) usable_until: Option<Instant>,
}

impl KeySet {
    /// No key: every token names an unknown `kid`.
    pub fn empty() -> Self {
        Self {
            keys: HashMap::new(),
            fetched_at: Instant::now(),
            fresh_for: std::time::Duration::ZERO,
            usable_until: None,
        }
    }

    /// Whether the set has been stale for longer than its bound at `now`.
    pub(crate) fn too_stale(&self, now: Instant) -> bool {
        self.usable_until.is_some_and(|until| now >= until)
    }

    /// Keeps the RSA signing keys that are usable for RS256 (2048 to 8192 bits) and have a
    /// `kid`; skips the rest, so that one odd key in a set shared with other issuers does not
    /// hide the good ones.
    pub fn from_jwks(
        json: &[u8],
        fresh_for: std::time::Duration,
    ) -> Result<Self, serde_json::Error> {
        let set: JwkSet = serde_json::from_slice(json)?;
        let mut keys = HashMap::with_capacity(set.keys.len());
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.as_ref() else {
                continue;
            };
            let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
                continue;
            };
            if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            if matches!(jwk.common.key_algorithm, Some(alg) if alg != KeyAlgorithm::RS256) {
                continue;
            }
            if let Some(key) = parse_rsa(rsa) {
                keys.insert(kid.clone(), key);
            }
        }
        Ok(Self {
            keys,
            fetched_at: Instant::now(),
            fresh_for,
            usable_until: None,
        })
    }

    /// The key named `kid`, parsed.
    pub fn get(&self, kid: &str) -> Option<&ParsedPublicKey> {
        self.keys.get(kid)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `kid`s of the keys held, in no order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// The key as aws-lc-rs verifies with it: modulus and exponent (base64url, RFC 7518 §6.3.1)
/// to a SubjectPublicKeyInfo, parsed once.
fn parse_rsa(rsa: &RSAKeyParameters) -> Option<ParsedPublicKey> {
    let n = URL_SAFE_NO_PAD.decode(&rsa.n).ok()?;
    let e = URL_SAFE_NO_PAD.decode(&rsa.e).ok()?;
    // Parsing accepts any size; RS256 verification would refuse these keys on every use.
    let bits = n.iter().position(|&byte| byte != 0).map_or(0, |first| {
        (n.len() - first) * 8 - n[first].leading_zeros() as usize
    });
    if !(2048..=8192).contains(&bits) {
        return None;
    }
    let spki = aws_lc_rs::rsa::PublicKeyComponents {
        n: n.as_slice(),
        e: e.as_slice(),
    }
    .as_der()
    .ok()?;
    ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, spki.as_ref()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_rs256_signing_keys_with_a_kid_rfc7517_4() {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let json = format!(
            r#"{{"keys":[
              {{"kty":"RSA","kid":"good","use":"sig","alg":"RS256","n":"{n}","e":"AQAB"}},
              {{"kty":"RSA","use":"sig","alg":"RS256","n":"{n}","e":"AQAB"}},
              {{"kty":"RSA","kid":"enc","use":"enc","n":"{n}","e":"AQAB"}},
              {{"kty":"RSA","kid":"ps","alg":"PS256","n":"{n}","e":"AQAB"}},
              {{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}}
            ]}}"#
        );
        let set = KeySet::from_jwks(json.as_bytes(), std::time::Duration::ZERO).unwrap();
        assert_eq!(set.kids().collect::<Vec<_>>(), vec!["good"]);
    }

    #[test]
    fn rsa_keys_shorter_than_2048_bits_are_skipped_rfc7518_3_3() {
        let n = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
        let mut short = URL_SAFE_NO_PAD.decode(n).unwrap();
        short.truncate(128);
        short[127] |= 1;
        let short = URL_SAFE_NO_PAD.encode(short);
        let json = format!(
            r#"{{"keys":[
              {{"kty":"RSA","kid":"short","n":"{short}","e":"AQAB"}},
              {{"kty":"RSA","kid":"good","n":"{n}","e":"AQAB"}}
            ]}}"#
        );
        let set = KeySet::from_jwks(json.as_bytes(), std::time::Duration::ZERO).unwrap();
        assert_eq!(set.kids().collect::<Vec<_>>(), vec!["good"]);
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        assert!(KeySet::from_jwks(b"{\"keys\":[{]", std::time::Duration::ZERO).is_err());
        assert!(KeySet::from_jwks(b"null", std::time::Duration::ZERO).is_err());
    }
}
