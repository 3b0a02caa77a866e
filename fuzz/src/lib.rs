//! What the fuzz targets share: a real RSA signing key made once per process, its JWKS, and
//! compact-JWS signing, so that inputs can reach the checks that run after the signature.
//!
//! The key is generated at start-up, never stored: a crashing input must not depend on it.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The issuer and audience the fuzzed verifier expects.
pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "api";
pub const KID: &str = "fuzz-key-1";

pub struct TestKey {
    key_pair: KeyPair,
    /// `{"keys":[…]}` with the public half under [`KID`].
    pub jwks: String,
}

/// The process's signing key.
pub fn test_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let key_pair = KeyPair::generate(KeySize::Rsa2048).expect("generating an RSA key");
        let public = key_pair.public_key();
        let n = b64url(public.modulus().big_endian_without_leading_zero());
        let e = b64url(public.exponent().big_endian_without_leading_zero());
        let jwks = format!(
            r#"{{"keys":[{{"kty":"RSA","use":"sig","alg":"RS256","kid":"{KID}","n":"{n}","e":"{e}"}}]}}"#
        );
        TestKey { key_pair, jwks }
    })
}

impl TestKey {
    /// `base64url(header) "." base64url(claims) "." base64url(RS256 signature)`.
    pub fn sign(&self, header: &[u8], claims: &[u8]) -> String {
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
        format!("{input}.{}", b64url(&signature))
    }
}

/// The header of a genuine access token under the process's key.
pub fn genuine_header() -> String {
    format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{KID}"}}"#)
}

/// Claims a genuine user token carries, valid for five minutes from now.
pub fn genuine_claims() -> String {
    let now = unix_now();
    format!(
        r#"{{"iss":"{ISSUER}","sub":"alice","aud":"{AUDIENCE}","exp":{},"iat":{now},"jti":"j1","client_id":"public","scope":"items:read","preferred_username":"alice"}}"#,
        now + 300
    )
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
