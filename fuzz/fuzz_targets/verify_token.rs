//! Bearer tokens from arbitrary bytes against a `Verifier` holding a real RSA key set, offline.
//!
//! The first byte chooses how much of the token is genuine, so that inputs reach every check:
//!   0  the rest is the token as a client would send it;
//!   1  a genuine header, then the rest as payload and signature;
//!   2  a genuine header and the rest as claims, signed with the real key;
//!   3  the rest as header, with genuine claims, signed with the real key.
//! Properties: no panic; nothing the fuzzer cannot sign is accepted (0, 1); what is accepted
//! carries our issuer and audience, is not expired, and names our key under RS256 (2, 3).
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use adversarial_fuzz::{genuine_claims, genuine_header, test_key, unix_now, AUDIENCE, ISSUER, KID};
use libfuzzer_sys::fuzz_target;
use oauth2_jwt_verifier::KeySet;
use oauth2_jwt_verifier::{Verifier, VerifierConfig};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    leeway: u64,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let mut config = VerifierConfig::new(ISSUER.parse().expect("issuer url"), AUDIENCE);
        // An unknown kid must not send us to the network: the cooldown outlasts any run.
        config.unknown_kid_cooldown = Duration::from_secs(365 * 24 * 3600);
        config.max_token_bytes = 2048;
        let leeway = config.leeway.as_secs();
        let keys = KeySet::from_jwks(
            adversarial_fuzz::jwks().as_bytes(),
            Duration::from_secs(3600),
        )
        .expect("jwks");
        assert_eq!(keys.len(), 1);
        let verifier = runtime
            .block_on(async { Verifier::with_keys(config, keys) })
            .expect("verifier");
        Fixture {
            runtime,
            verifier,
            leeway,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = test_key();
    let token = match mode % 4 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => format!(
            "{}.{}",
            adversarial_fuzz::b64url(genuine_header()),
            String::from_utf8_lossy(rest)
        ),
        2 => key.sign_bytes(genuine_header().as_bytes(), rest),
        _ => key.sign_bytes(rest, genuine_claims().as_bytes()),
    };
    let result = fixture.runtime.block_on(fixture.verifier.verify(&token));
    let Ok(claims) = result else { return };
    assert!(
        mode % 4 >= 2,
        "accepted a token the fuzzer could not sign: {token:?}"
    );
    assert_eq!(claims.iss, ISSUER, "wrong issuer accepted");
    assert!(claims.aud.contains(AUDIENCE), "wrong audience accepted");
    assert!(
        claims.exp.saturating_add(fixture.leeway) >= unix_now(),
        "expired token accepted"
    );
    let header = header_json(&token);
    assert_eq!(header["alg"], "RS256", "accepted under header {header}");
    assert_eq!(header["kid"], KID, "accepted under header {header}");
});

/// The decoded header of a compact JWS, `null` when it does not decode.
fn header_json(token: &str) -> serde_json::Value {
    use base64::Engine;
    let first = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or_default()
}
