//! Signing keys: parsed once at start into aws-lc-rs key pairs, so that signing a token costs one
//! RSA operation and no parsing. The JWKS and each key's encoded JWT header are computed once too.

pub mod files;

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

/// An RSA private key ready to sign, with its public half as a JWK.
pub struct SigningKey {
    kid: String,
    key_pair: KeyPair,
    jwk: serde_json::Value,
    /// `base64url(header)` followed by `.`, the constant prefix of every token it signs.
    header_prefix: String,
    rng: SystemRandom,
    decoding_key: jsonwebtoken::DecodingKey,
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
        let decoding_key = jsonwebtoken::DecodingKey::from_rsa_components(&n, &e)
            .map_err(|err| KeyError::Rejected(err.to_string()))?;
        let jwk = json!({"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e});
        let header = json!({"alg": "RS256", "typ": shared::ACCESS_TOKEN_TYP, "kid": kid});
        let header_prefix = format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string()));
        Ok(Self {
            kid,
            key_pair,
            jwk,
            header_prefix,
            rng: SystemRandom::new(),
            decoding_key,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwk(&self) -> &serde_json::Value {
        &self.jwk
    }

    /// The public half, for checking tokens this server issued (introspection, revocation).
    pub fn decoding_key(&self) -> &jsonwebtoken::DecodingKey {
        &self.decoding_key
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

/// The keys in use: one signs, all are published.
pub struct KeyRing {
    active: Arc<SigningKey>,
    published: Vec<Arc<SigningKey>>,
    jwks_json: String,
}

impl KeyRing {
    /// `keys` newest first; the newest signs.
    pub fn new(keys: Vec<SigningKey>) -> Option<Self> {
        let published: Vec<Arc<SigningKey>> = keys.into_iter().map(Arc::new).collect();
        let active = published.first()?.clone();
        let jwks_json =
            json!({"keys": published.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
                .to_string();
        Some(Self {
            active,
            published,
            jwks_json,
        })
    }

    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.published.iter().find(|k| k.kid == kid).map(|k| &**k)
    }

    pub fn published(&self) -> impl Iterator<Item = &SigningKey> {
        self.published.iter().map(|k| &**k)
    }

    /// The RFC 7517 key set, public members only.
    pub fn jwks_json(&self) -> &str {
        &self.jwks_json
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
}
