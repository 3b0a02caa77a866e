//! Micro-benchmarks of the operations on the token paths, one group each, so that a regression
//! in one of them shows up on its own: signing, verifying, claims encoding, key lookup, the
//! bearer header.
//!
//! `cargo bench -p benchmarks` (add `-- --quick` for a fast pass, or a filter such as `sign`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark without its fixture fails loudly

use std::hint::black_box;
use std::time::Duration;

use auth_server::keys::{KeyRing, PublishedKey};
use auth_server::store::KeyState;
use auth_server::tokens::{Subject, TokenIssuer, UserProfile};
use benchmarks::{
    decoding_key, generate_key, key_set, now, user_claims, verifier_validation, AUDIENCE, ISSUER,
};
use criterion::{criterion_group, criterion_main, Criterion};
use oauth2_jwt_verifier::KeySet;
use oauth2_jwt_verifier::{AccessClaims, Scope, Verifier, VerifierConfig};

fn signing(c: &mut Criterion) {
    let key = generate_key().unwrap();
    let claims_json = serde_json::to_vec(&user_claims(now())).unwrap();
    let mut group = c.benchmark_group("sign");
    // The one RSA operation of every token: aws-lc-rs, key parsed once, header precomputed.
    group.bench_function("sign_jwt", |b| {
        b.iter(|| key.sign_jwt(black_box(&claims_json)).unwrap())
    });
    let issuer = TokenIssuer::new(ISSUER.into(), 900, KeyRing::single(generate_key().unwrap()));
    let scope = Scope::from_tokens(["items:read"]);
    let subject = Subject {
        sub: "bench",
        user: Some(UserProfile {
            username: "bench",
            name: Some("Bench Mark"),
            email: Some("bench@example.com"),
        }),
    };
    // Claims, their encoding, a random jti and the signature: what a grant pays for a token.
    group.bench_function("mint_access", |b| {
        b.iter(|| {
            issuer
                .mint_access(black_box(&subject), "bench-client", &scope, AUDIENCE, 0)
                .unwrap()
        })
    });
    group.finish();
}

fn verifying(c: &mut Criterion) {
    let key = generate_key().unwrap();
    let token = key
        .sign_jwt(&serde_json::to_vec(&user_claims(now())).unwrap())
        .unwrap();
    let keys = key_set(&key).unwrap();
    let parsed = keys.get(key.kid()).unwrap();
    let decoding_key = decoding_key(&key).unwrap();
    let validation = verifier_validation(ISSUER, AUDIENCE);
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
            .unwrap();
    let mut group = c.benchmark_group("verify");
    // The RSA check alone, with the key as the verifier holds it: the floor of a verification.
    group.bench_function("signature_parsed_key", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(signing_input.as_bytes()), &signature)
                .unwrap()
        })
    });
    // Header, signature and claims with an equal validation: the library's complete cost.
    group.bench_function("jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<AccessClaims>(black_box(&token), &decoding_key, &validation)
                .unwrap()
        })
    });
    let verifier = |cache_capacity: usize| {
        let mut config = VerifierConfig::new(ISSUER.parse().unwrap(), AUDIENCE);
        config.unknown_kid_cooldown = Duration::from_secs(24 * 3600);
        config.token_cache_capacity = cache_capacity;
        Verifier::with_keys(config, key_set(&key).unwrap()).unwrap()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Everything `/users/me` does with a new token: size, header, kid lookup, signature, claims.
    let uncached = verifier(0);
    group.bench_function("verifier_uncached", |b| {
        b.iter(|| {
            runtime
                .block_on(uncached.verify(black_box(&token)))
                .unwrap()
        })
    });
    // The same token again: a cache hit, judged on exp.
    let cached = verifier(1024);
    group.bench_function("verifier_cache_hit", |b| {
        b.iter(|| runtime.block_on(cached.verify(black_box(&token))).unwrap())
    });
    // New tokens in turn, more of them than the cache holds: every one a miss and an insert.
    let claims = user_claims(now());
    let tokens: Vec<String> = (0..2048)
        .map(|i| {
            let claims = AccessClaims {
                jti: format!("jti-{i}"),
                ..claims.clone()
            };
            key.sign_jwt(&serde_json::to_vec(&claims).unwrap()).unwrap()
        })
        .collect();
    let mut next = tokens.iter().cycle();
    group.bench_function("verifier_uncached_new_tokens", |b| {
        b.iter(|| {
            let token = next.next().unwrap();
            runtime.block_on(uncached.verify(black_box(token))).unwrap()
        })
    });
    let missing = verifier(256);
    let mut next = tokens.iter().cycle();
    group.bench_function("verifier_cache_miss", |b| {
        b.iter(|| {
            let token = next.next().unwrap();
            runtime.block_on(missing.verify(black_box(token))).unwrap()
        })
    });
    group.finish();
}

fn claims_encoding(c: &mut Criterion) {
    let claims = user_claims(now());
    let json = serde_json::to_vec(&claims).unwrap();
    let mut group = c.benchmark_group("claims");
    group.bench_function("encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&claims)).unwrap())
    });
    group.bench_function("decode", |b| {
        b.iter(|| serde_json::from_slice::<AccessClaims>(black_box(&json)).unwrap())
    });
    group.finish();
}

fn key_lookup(c: &mut Criterion) {
    // Three keys, as after two rotations; the lookup is for the oldest.
    let keys: Vec<_> = (0..3).map(|_| generate_key().unwrap()).collect();
    let oldest = keys.last().unwrap().kid().to_owned();
    let jwks = serde_json::json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() });
    let key_set = KeySet::from_jwks(jwks.to_string().as_bytes(), Duration::ZERO).unwrap();
    let mut keys = keys.into_iter();
    let active = std::sync::Arc::new(keys.next().unwrap());
    let retired = keys
        .map(|k| PublishedKey::from_jwk(k.kid(), KeyState::Retired, &k.jwk().to_string()).unwrap())
        .collect();
    let ring = KeyRing::new(active, retired);
    let mut group = c.benchmark_group("key_lookup");
    group.bench_function("key_ring_get", |b| {
        b.iter(|| ring.get(black_box(&oldest)).unwrap().kid().len())
    });
    group.bench_function("key_set_get", |b| {
        b.iter(|| key_set.get(black_box(&oldest)).is_some())
    });
    group.finish();
}

/// The `Authorization` header read as RFC 6750 §2.1 reads it (scheme, one b64token), the check
/// the poem integration runs on every request besides poem-openapi's own extraction: the
/// `/users/me` profiles named its per-byte check.
fn bearer_header(c: &mut Criterion) {
    let key = generate_key().unwrap();
    let token = key
        .sign_jwt(&serde_json::to_vec(&user_claims(now())).unwrap())
        .unwrap();
    let header = format!("Bearer {token}");
    let mut group = c.benchmark_group("bearer");
    group.bench_function("bearer_token", |b| {
        b.iter(|| {
            oauth2_jwt_verifier::http::bearer_token([black_box(header.as_bytes())])
                .unwrap()
                .unwrap()
                .len()
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    signing,
    verifying,
    claims_encoding,
    key_lookup,
    bearer_header
);
criterion_main!(benches);
