//! The tools behind `bench/run` (see BENCHMARKS.md): what the crypto alone allows on this machine
//! (`limits`), user tokens to load the resource server with (`mint-tokens`), and the fixtures the
//! criterion benches share with them. Everything signs and verifies through the servers' own
//! code: auth-server's `SigningKey` and `TokenIssuer`, and the `Validation` of `oauth2_jwt_verifier::Verifier`.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use auth_server::keys::SigningKey;
use jsonwebtoken::{Algorithm, Validation};
use oauth2_jwt_verifier::KeySet;
use oauth2_jwt_verifier::{AccessClaims, Audience, Scope};
pub use test_kit::unix_now as now;
use test_kit::TestSigner;

/// Issuer and audience of the tokens the fixtures sign.
pub const ISSUER: &str = "http://127.0.0.1:8000";
pub const AUDIENCE: &str = "api";

/// A fresh RSA-2048 key, as `auth-server keys rotate` makes one.
pub fn generate_key() -> anyhow::Result<SigningKey> {
    SigningKey::from_pkcs8(&TestSigner::generate().pkcs8_der()).context("parsing the generated key")
}

/// A key brought as a PEM file (the newest in `keys_dir`), or a new one: the same kind of key
/// the auth-server signs with, which is all the limits need.
pub fn signing_key(keys_dir: Option<&std::path::Path>) -> anyhow::Result<SigningKey> {
    match keys_dir {
        Some(dir) => auth_server::keys::files::load(dir)?
            .into_iter()
            .next()
            .map(|file| file.key)
            .ok_or_else(|| anyhow!("no PEM signing key in {}", dir.display())),
        None => generate_key(),
    }
}

/// Claims shaped like a password-grant token's: user profile, one audience, a 900 s lifetime.
pub fn user_claims(now: u64) -> AccessClaims {
    AccessClaims {
        iss: ISSUER.into(),
        sub: "bench".into(),
        aud: Audience::One(AUDIENCE.into()),
        exp: now + 900,
        iat: now,
        nbf: None,
        jti: "3q2-7w8kTm2JtVb1Q9xYzA".into(),
        client_id: "bench-client".into(),
        scope: Scope::from_tokens(["items:read"]),
        preferred_username: Some("bench".into()),
        name: Some("Bench Mark".into()),
        email: Some("bench@example.com".into()),
    }
}

/// The `Validation` that `oauth2_jwt_verifier::Verifier::new` builds for `issuer` and `audience` (default
/// leeway of 30 s; `exp`, `nbf`, `iss`, `aud` and `sub` checked). Kept equal by hand: if the
/// verifier's changes, change this.
pub fn verifier_validation(issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 30;
    validation.validate_nbf = true;
    validation.validate_exp = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation
}

/// This key's public half as jsonwebtoken takes it, for the `verify_jwt` comparison.
pub fn decoding_key(key: &SigningKey) -> anyhow::Result<jsonwebtoken::DecodingKey> {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk().clone())?;
    Ok(jsonwebtoken::DecodingKey::from_jwk(&jwk)?)
}

/// The key set a resource server would build from this key's JWKS.
pub fn key_set(key: &SigningKey) -> anyhow::Result<KeySet> {
    let jwks = serde_json::json!({ "keys": [key.jwk()] });
    Ok(KeySet::from_jwks(
        jwks.to_string().as_bytes(),
        Duration::from_secs(3600),
    )?)
}

/// Runs `op` on `threads` threads until `duration` has passed; returns operations per second
/// over all threads. The first error stops the measurement and is returned.
pub fn ops_per_second<F>(threads: usize, duration: Duration, op: F) -> anyhow::Result<f64>
where
    F: Fn() -> anyhow::Result<()> + Sync,
{
    let start = Instant::now();
    let deadline = start + duration;
    let results: Vec<anyhow::Result<(u64, Duration)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    // At least one operation, however late the thread starts.
                    let mut n_ops = 0u64;
                    loop {
                        op()?;
                        n_ops += 1;
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    Ok((n_ops, start.elapsed()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a measuring thread panicked")))
            })
            .collect()
    });
    let mut total = 0u64;
    let mut longest = Duration::ZERO;
    for result in results {
        let (n_ops, elapsed) = result?;
        total += n_ops;
        longest = longest.max(elapsed);
    }
    Ok(total as f64 / longest.as_secs_f64().max(1e-9))
}

/// Polls a future once: its value if it completes without waiting (a cached token, an endpoint
/// that answers at once), without the cost of a runtime's `block_on` in a criterion figure;
/// `None` if it would wait, which the benches treat as a broken fixture.
pub fn ready<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(value) => Some(value),
        std::task::Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_fixture_token_verifies_with_the_verifier_validation() {
        let key = generate_key().unwrap();
        let claims = serde_json::to_vec(&user_claims(now())).unwrap();
        let token = key.sign_jwt(&claims).unwrap();
        let keys = key_set(&key).unwrap();
        let decoded = jsonwebtoken::decode::<AccessClaims>(
            &token,
            &decoding_key(&key).unwrap(),
            &verifier_validation(ISSUER, AUDIENCE),
        )
        .unwrap();
        assert_eq!(decoded.claims.preferred_username.as_deref(), Some("bench"));
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let signature =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
                .unwrap();
        assert!(keys
            .get(key.kid())
            .unwrap()
            .verify_sig(signing_input.as_bytes(), &signature)
            .is_ok());
    }

    #[test]
    fn ops_per_second_counts_over_all_threads() {
        let rate = ops_per_second(2, Duration::from_millis(50), || Ok(())).unwrap();
        assert!(rate > 1000.0, "{rate}");
        assert!(ops_per_second(1, Duration::from_millis(10), || Err(anyhow!("boom"))).is_err());
    }
}
