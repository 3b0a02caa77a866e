//! Signing keys: parsed once into aws-lc-rs key pairs, so that signing a token costs one RSA
//! operation and no parsing. The JWKS, the same keys parsed for checking this server's own
//! tokens, and each key's encoded JWT header are computed once per change of keys too. Where
//! keys live and how they rotate: `lifecycle`.

pub mod encryption;
pub mod files;
pub mod lifecycle;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use oauth2_jwt_verifier::KeySet;
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::store::KeyState;

/// An RSA private key ready to sign, with its public half as a JWK.
pub struct SigningKey {
    kid: String,
    key_pair: KeyPair,
    jwk: serde_json::Value,
    /// `base64url(header)` followed by `.`, the constant prefix of every token it signs.
    header_prefix: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an RSA private key in PKCS#8: {0}")]
    Rejected(String),
    #[error("RSA keys must have at least 2048 bits, this one has {0}")]
    TooSmall(usize),
    #[error("signing failed")]
    Signing,
    #[error("generating an RSA key failed")]
    Generating,
    #[error("the published key {kid} is not a valid RSA JWK with that thumbprint")]
    BadJwk { kid: String },
}

impl SigningKey {
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, KeyError> {
        let key_pair =
            KeyPair::from_pkcs8(der).map_err(|err| KeyError::Rejected(err.to_string()))?;
        let bits = key_pair.public_modulus_len() * 8;
        if bits < 2048 {
            return Err(KeyError::TooSmall(bits));
        }
        let public = key_pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = thumbprint(&n, &e);
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        let header =
            json!({"alg": "RS256", "typ": oauth2_jwt_verifier::ACCESS_TOKEN_TYP, "kid": kid});
        let header_prefix = format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string()));
        Ok(Self {
            kid,
            key_pair,
            jwk,
            header_prefix,
            rng: SystemRandom::new(),
        })
    }

    /// A new RSA-2048 key, with its PKCS#8 encoding for sealing.
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), KeyError> {
        let key_pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generating)?;
        let der = Zeroizing::new(
            key_pair
                .as_der()
                .map_err(|_| KeyError::Generating)?
                .as_ref()
                .to_vec(),
        );
        Ok((Self::from_pkcs8(&der)?, der))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// A compact JWS over `claims` (already JSON): header, payload and RS256 signature.
    pub fn sign_jwt(&self, claims_json: &[u8]) -> Result<String, KeyError> {
        let payload_len = base64::encoded_len(claims_json.len(), false).unwrap_or(0);
        let signature_len =
            base64::encoded_len(self.key_pair.public_modulus_len(), false).unwrap_or(0);
        let mut token =
            String::with_capacity(self.header_prefix.len() + payload_len + 1 + signature_len);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(claims_json, &mut token);
        let mut signature = [0u8; 1024];
        let signature = signature
            .get_mut(..self.key_pair.public_modulus_len())
            .ok_or(KeyError::Signing)?;
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, token.as_bytes(), signature)
            .map_err(|_| KeyError::Signing)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A key in the JWKS: public half only, with its lifecycle state.
pub struct PublishedKey {
    kid: String,
    state: KeyState,
    jwk: serde_json::Value,
}

impl PublishedKey {
    /// From a stored public JWK, which must be an RSA key whose RFC 7638 thumbprint is `kid`.
    pub fn from_jwk(kid: &str, state: KeyState, jwk_json: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::BadJwk {
            kid: kid.to_owned(),
        };
        let jwk: serde_json::Value = serde_json::from_str(jwk_json).map_err(|_| bad())?;
        let (Some(n), Some(e)) = (jwk["n"].as_str(), jwk["e"].as_str()) else {
            return Err(bad());
        };
        if jwk["kty"] != "RSA" || thumbprint(n, e) != kid || jwk["kid"] != kid {
            return Err(bad());
        }
        if URL_SAFE_NO_PAD.decode(n).is_err() || URL_SAFE_NO_PAD.decode(e).is_err() {
            return Err(bad());
        }
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        Ok(Self {
            kid: kid.to_owned(),
            state,
            jwk,
        })
    }

    fn of(key: &SigningKey, state: KeyState) -> Self {
        Self {
            kid: key.kid.clone(),
            state,
            jwk: key.jwk.clone(),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn state(&self) -> KeyState {
        self.state
    }
}

/// The keys in use: the active one signs; it and the next and retired keys are published.
pub struct KeyRing {
    active: Arc<SigningKey>,
    published: Vec<PublishedKey>,
    jwks_json: String,
    /// The published keys as a resource server holds them, parsed from `jwks_json`: what this
    /// server checks its own tokens against.
    key_set: KeySet,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active.kid)
            .field(
                "published",
                &self
                    .published
                    .iter()
                    .map(|k| (&k.kid, k.state))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KeyRing {
    /// `published` in the order of the JWKS within each state; the active key is added when it
    /// is missing.
    pub fn new(active: Arc<SigningKey>, mut published: Vec<PublishedKey>) -> Self {
        published.retain(|key| key.state != KeyState::Revoked);
        match published.iter_mut().find(|key| key.kid == active.kid) {
            Some(key) => key.state = KeyState::Active,
            None => published.insert(0, PublishedKey::of(&active, KeyState::Active)),
        }
        // The signing key first, then the one about to sign, then those still honoured: a
        // stable order whatever order the store lists keys made in the same second in.
        published.sort_by_key(|key| match key.state {
            KeyState::Active => 0,
            KeyState::Next => 1,
            _ => 2,
        });
        let jwks_json =
            json!({"keys": published.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
                .to_string();
        // Our own JSON always parses; were it not to, no token of ours would pass (fail closed).
        let key_set = KeySet::from_jwks(jwks_json.as_bytes(), Duration::ZERO)
            .unwrap_or_else(|_| KeySet::empty());
        Self {
            active,
            published,
            jwks_json,
            key_set,
        }
    }

    /// A ring of one key, which signs.
    pub fn single(active: SigningKey) -> Self {
        Self::new(Arc::new(active), Vec::new())
    }

    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    pub fn active_shared(&self) -> Arc<SigningKey> {
        Arc::clone(&self.active)
    }

    pub fn get(&self, kid: &str) -> Option<&PublishedKey> {
        self.published.iter().find(|k| k.kid == kid)
    }

    pub fn published(&self) -> impl Iterator<Item = &PublishedKey> {
        self.published.iter()
    }

    /// The published keys in `state`.
    pub fn count(&self, state: KeyState) -> usize {
        self.published.iter().filter(|k| k.state == state).count()
    }

    /// The RFC 7517 key set, public members only.
    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
    }

    /// The published keys, parsed once per ring, for [`oauth2_jwt_verifier::verify_with`].
    pub fn key_set(&self) -> &KeySet {
        &self.key_set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc7638_3_1_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_published_jwk_must_match_its_kid_rfc7638() {
        let (key, _) = SigningKey::generate().unwrap();
        let jwk = key.jwk().to_string();
        let published = PublishedKey::from_jwk(key.kid(), KeyState::Next, &jwk).unwrap();
        assert_eq!(published.kid(), key.kid());
        let (other, _) = SigningKey::generate().unwrap();
        assert!(PublishedKey::from_jwk(other.kid(), KeyState::Next, &jwk).is_err());
        assert!(PublishedKey::from_jwk(key.kid(), KeyState::Next, "{}").is_err());
    }

    #[test]
    fn the_ring_publishes_the_active_key_and_never_a_revoked_one() {
        let (active, _) = SigningKey::generate().unwrap();
        let (next, _) = SigningKey::generate().unwrap();
        let (revoked, _) = SigningKey::generate().unwrap();
        let ring = KeyRing::new(
            Arc::new(active),
            vec![
                PublishedKey::of(&next, KeyState::Next),
                PublishedKey::of(&revoked, KeyState::Revoked),
            ],
        );
        let jwks: serde_json::Value = serde_json::from_str(ring.jwks_json()).unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, vec![ring.active().kid(), next.kid()]);
        assert!(ring.get(revoked.kid()).is_none());
        assert_eq!(ring.count(KeyState::Active), 1);
        assert_eq!(ring.count(KeyState::Next), 1);
    }

    #[test]
    fn the_ring_checks_tokens_against_exactly_the_keys_it_publishes() {
        let (active, _) = SigningKey::generate().unwrap();
        let (next, _) = SigningKey::generate().unwrap();
        let (retired, _) = SigningKey::generate().unwrap();
        let (revoked, _) = SigningKey::generate().unwrap();
        let ring = KeyRing::new(
            Arc::new(active),
            vec![
                PublishedKey::from_jwk(next.kid(), KeyState::Next, &next.jwk().to_string())
                    .unwrap(),
                PublishedKey::of(&retired, KeyState::Retired),
                PublishedKey::of(&revoked, KeyState::Revoked),
            ],
        );
        let mut published: Vec<&str> = ring.published().map(|k| k.kid()).collect();
        let mut checked: Vec<&str> = ring.key_set().kids().collect();
        published.sort_unstable();
        checked.sort_unstable();
        assert_eq!(checked, published);
        assert_eq!(checked.len(), 3);
        assert!(ring.key_set().get(revoked.kid()).is_none());
    }

    #[test]
    fn a_published_jwk_with_a_modulus_that_is_not_base64url_is_refused() {
        let n = "not base64url!";
        let kid = thumbprint(n, "AQAB");
        let jwk = json!({"kty": "RSA", "kid": kid, "n": n, "e": "AQAB"}).to_string();
        assert!(PublishedKey::from_jwk(&kid, KeyState::Next, &jwk).is_err());
    }

    #[test]
    fn the_jwks_lists_active_then_next_then_retired_whatever_the_store_order() {
        let (active, _) = SigningKey::generate().unwrap();
        let (next, _) = SigningKey::generate().unwrap();
        let (retired, _) = SigningKey::generate().unwrap();
        let ring = KeyRing::new(
            Arc::new(active),
            vec![
                PublishedKey::of(&retired, KeyState::Retired),
                PublishedKey::of(&next, KeyState::Next),
            ],
        );
        let kids: Vec<&str> = ring.published().map(|k| k.kid()).collect();
        assert_eq!(kids, vec![ring.active().kid(), next.kid(), retired.kid()]);
    }

    #[test]
    fn debug_output_names_the_kid_and_holds_no_key_material() {
        use base64::Engine;
        let (key, pkcs8) = SigningKey::generate().unwrap();
        let kid = key.kid().to_owned();
        let key_debug = format!("{key:?}");
        let debug = format!("{key_debug} {:?}", KeyRing::new(Arc::new(key), Vec::new()));
        assert!(key_debug.contains(&kid), "{debug}");
        // No run of the private key's bytes, in any encoding a log might show them in.
        let standard = base64::engine::general_purpose::STANDARD.encode(&*pkcs8);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*pkcs8);
        let hex: String = pkcs8.iter().map(|b| format!("{b:02x}")).collect();
        for encoded in [&standard, &url, &hex] {
            for window in encoded.as_bytes().chunks(24).skip(4).take(20) {
                let piece = std::str::from_utf8(window).unwrap();
                assert!(!debug.contains(piece), "Debug shows key material: {debug}");
            }
        }
        assert!(debug.len() < 400, "Debug is more than a kid: {debug}");
    }
}
