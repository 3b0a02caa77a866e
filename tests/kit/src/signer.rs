//! A token signer for tests: an RSA key pair of its own (or one the test brings, such as a
//! server's key read from its store), its public half as a JWK, and compact JWS signing of any
//! header and claims, whatever they say. Tests that forge tokens need exactly that freedom,
//! which the servers' signing code rightly refuses; fuzz targets and benches need a key that
//! exists only for the run.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// Seconds since the Unix epoch, as JWT times are written.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Base64url without padding, the encoding of every JWS part.
pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An RSA key pair that signs RS256.
pub struct TestSigner {
    key_pair: KeyPair,
}

impl TestSigner {
    /// A fresh RSA-2048 key, the size the auth-server makes.
    pub fn generate() -> Self {
        Self {
            key_pair: KeyPair::generate(KeySize::Rsa2048).expect("generating an RSA key"),
        }
    }

    /// The key in a PKCS#8 document (DER), as a server stores one.
    pub fn from_pkcs8(der: &[u8]) -> Self {
        Self {
            key_pair: KeyPair::from_pkcs8(der).expect("a PKCS#8 RSA private key"),
        }
    }

    /// The private key as a PKCS#8 document (DER), for code that takes keys in that form.
    pub fn pkcs8_der(&self) -> Vec<u8> {
        self.key_pair
            .as_der()
            .expect("encoding the RSA key")
            .as_ref()
            .to_vec()
    }

    /// The public modulus, big-endian.
    pub fn modulus(&self) -> Vec<u8> {
        self.key_pair
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec()
    }

    /// The modulus in base64url, the `n` of the key's JWK.
    pub fn modulus_b64(&self) -> String {
        b64url(self.modulus())
    }

    fn exponent_b64(&self) -> String {
        b64url(
            self.key_pair
                .public_key()
                .exponent()
                .big_endian_without_leading_zero(),
        )
    }

    /// The RFC 7638 thumbprint of the public key, the kid the auth-server gives its keys.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            self.exponent_b64(),
            self.modulus_b64()
        );
        b64url(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            canonical.as_bytes(),
        ))
    }

    /// The public half as an RS256 signing JWK under `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": kid,
            "n": self.modulus_b64(),
            "e": self.exponent_b64(),
        })
    }

    /// `{"keys":[…]}` holding [`jwk`](Self::jwk) alone, as text.
    pub fn jwks(&self, kid: &str) -> String {
        json!({ "keys": [self.jwk(kid)] }).to_string()
    }

    /// `base64url(header) "." base64url(claims) "." base64url(RS256 signature)` over the bytes
    /// as they are, JSON or not.
    pub fn sign_bytes(&self, header: &[u8], claims: &[u8]) -> String {
        let input = format!("{}.{}", b64url(header), b64url(claims));
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("signing");
        format!("{input}.{}", b64url(signature))
    }

    /// A compact JWS over `header` and `claims`, signed RS256 whatever `header` says.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_bytes(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }
}

/// A compact JWS over `header` and `claims`, MACed with HMAC-SHA256 under `secret`: the token
/// of an attacker who hopes a verifier lets the token choose its algorithm.
pub fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64url(tag.as_ref()))
}

/// `base64url(header) "." base64url(claims)`, the JWS signing input (RFC 7515 §5.1), which is
/// also an unsigned token but for the final dot.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string()),
        b64url(claims.to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};

    fn public_key(jwk: &Value) -> RsaPublicKeyComponents<Vec<u8>> {
        let part = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
        RsaPublicKeyComponents {
            n: part("n"),
            e: part("e"),
        }
    }

    #[test]
    fn a_token_verifies_with_the_published_key_and_not_with_another() {
        let signer = TestSigner::generate();
        let token = signer.sign(&json!({"alg": "RS256"}), &json!({"sub": "alice"}));
        let (input, signature) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let jwks: Value = serde_json::from_str(&signer.jwks("k1")).unwrap();
        assert_eq!(jwks["keys"][0]["kid"], "k1");
        public_key(&jwks["keys"][0])
            .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &signature)
            .unwrap();
        let other = TestSigner::generate();
        assert!(public_key(&other.jwk("k1"))
            .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &signature)
            .is_err());
        let (header, _) = input.split_once('.').unwrap();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).unwrap(),
            br#"{"alg":"RS256"}"#
        );
    }

    #[test]
    fn the_key_survives_pkcs8_and_its_thumbprint_is_stable() {
        let signer = TestSigner::generate();
        let again = TestSigner::from_pkcs8(&signer.pkcs8_der());
        assert_eq!(signer.modulus_b64(), again.modulus_b64());
        assert_eq!(signer.thumbprint(), again.thumbprint());
        assert_ne!(signer.thumbprint(), TestSigner::generate().thumbprint());
        assert_eq!(signer.thumbprint().len(), 43, "a SHA-256 in base64url");
    }

    #[test]
    fn hs256_is_the_hmac_of_the_signing_input() {
        let token = sign_hs256(&json!({"alg": "HS256"}), &json!({}), b"secret");
        let (input, tag) = token.rsplit_once('.').unwrap();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"secret");
        aws_lc_rs::hmac::verify(
            &key,
            input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(tag).unwrap(),
        )
        .unwrap();
        assert!(aws_lc_rs::hmac::verify(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"other"),
            input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(tag).unwrap()
        )
        .is_err());
    }
}
