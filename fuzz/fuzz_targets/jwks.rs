//! JWKS documents from arbitrary bytes, as the verifier parses what the issuer (or anyone able
//! to answer in its place) serves.
//!
//! Properties: no panic; every kid listed resolves to a key; each key, however odd its `n` and
//! `e`, can be used to check a genuine token without panicking, and only the real public key
//! accepts it.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use adversarial_fuzz::{genuine_claims, genuine_header, test_key};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use oauth2_jwt_verifier::KeySet;

/// A token signed by the process's key, and the real modulus it verifies under.
fn genuine() -> &'static (String, String) {
    static GENUINE: OnceLock<(String, String)> = OnceLock::new();
    GENUINE.get_or_init(|| {
        let key = test_key();
        let token = key.sign_bytes(genuine_header().as_bytes(), genuine_claims().as_bytes());
        (token, key.modulus_b64())
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(keys) = KeySet::from_jwks(data, Duration::ZERO) else {
        return;
    };
    let (token, real_n) = genuine();
    let kids: Vec<&str> = keys.kids().collect();
    assert_eq!(kids.len(), keys.len());
    // Only the signature matters here, checked as the verifier checks it: with the key as the
    // key set holds it, over `header.payload`.
    let (signed, signature) = token.rsplit_once('.').expect("a compact JWS");
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .expect("base64url signature");
    for kid in kids.iter().take(8) {
        let key = keys.get(kid).expect("a listed kid resolves");
        let accepted = key.verify_sig(signed.as_bytes(), &signature).is_ok();
        if accepted {
            // The document must have carried the real modulus somewhere.
            assert!(
                String::from_utf8_lossy(data).contains(real_n.as_str()),
                "a key other than the signer's verified its signature"
            );
        }
    }
});
