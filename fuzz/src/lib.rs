//! What the fuzz targets share: a real RSA signing key made once per process (the test kit's
//! signer), its JWKS, and genuine headers and claims, so that inputs can reach the checks that
//! run after the signature.
//!
//! The key is generated at start-up, never stored: a crashing input must not depend on it.

use std::sync::OnceLock;

pub use test_kit::signer::{b64url, unix_now, TestSigner};

/// The issuer and audience the fuzzed verifier expects.
pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "api";
pub const KID: &str = "fuzz-key-1";

/// The process's signing key.
pub fn test_key() -> &'static TestSigner {
    static KEY: OnceLock<TestSigner> = OnceLock::new();
    KEY.get_or_init(TestSigner::generate)
}

/// `{"keys":[…]}` with the public half of [`test_key`] under [`KID`].
pub fn jwks() -> String {
    test_key().jwks(KID)
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
