//! What a token request pays to establish its client (RFC 6749 §2.3.1), the piece the
//! client_credentials profile names besides the signature: the store read of the client (the
//! embedded SQLite store, one read on the calling thread) against the record held by
//! `AUTH_CLIENT_CACHE`, and the whole `client_auth::authenticate` (lookup, two keyed-hash
//! checks) either way. Beside it, `store_reads/refresh_context`: the refresh grant's one read
//! (RFC 6749 §6), a stored refresh token with its family's revocation and its user.
//!
//! `cargo bench -p benchmarks --bench client_lookup` (add `-- --quick` for a fast pass).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark without its fixture fails loudly

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use auth_server::oauth::client_auth::{authenticate, hash_secret, Credentials};
use auth_server::oauth::ClientCache;
use auth_server::store::{ClientRecord, GrantType, RefreshRecord, Store, UserRecord};
use criterion::{criterion_group, criterion_main, Criterion};
use oauth2_jwt_verifier::Scope;
use zeroize::Zeroizing;

const SECRET: &str = "bench-secret-0123456789-0123456789-0123";

fn lookups(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store: Arc<dyn Store> = runtime.block_on(auth_server::store::open(&url)).unwrap();
    let key = vec![7_u8; 32];
    let record = ClientRecord {
        client_id: "bench-client".into(),
        secret_hash: hash_secret(&key, SECRET),
        previous_secret: None,
        public: false,
        introspect: false,
        grants: vec![GrantType::ClientCredentials],
        scopes: Scope::from_tokens(["items:read"]),
        audiences: Vec::new(),
        stamp: "stamp".into(),
        not_before: 0,
    };
    runtime.block_on(store.insert_client(&record)).unwrap();
    let uncached = ClientCache::new(Duration::ZERO);
    let cached = ClientCache::new(Duration::from_secs(3600));
    runtime.block_on(cached.reload(store.as_ref())).unwrap();
    let credentials = || Credentials::Secret {
        client_id: "bench-client".into(),
        secret: Zeroizing::new(SECRET.into()),
    };

    let mut group = c.benchmark_group("client_lookup");
    group.bench_function("store_embedded", |b| {
        b.iter(|| {
            runtime
                .block_on(store.client(black_box("bench-client")))
                .unwrap()
        })
    });
    group.bench_function("cache_hit", |b| {
        b.iter(|| cached.get(black_box("bench-client")).unwrap())
    });
    group.bench_function("authenticate_store_embedded", |b| {
        b.iter(|| {
            runtime
                .block_on(authenticate(
                    store.as_ref(),
                    &uncached,
                    &key,
                    credentials(),
                    0,
                ))
                .unwrap()
        })
    });
    group.bench_function("authenticate_cached", |b| {
        b.iter(|| {
            runtime
                .block_on(authenticate(
                    store.as_ref(),
                    &cached,
                    &key,
                    credentials(),
                    0,
                ))
                .unwrap()
        })
    });
    group.finish();

    let user = UserRecord {
        username: "bench-user".into(),
        full_name: Some("Bench User".into()),
        email: Some("bench-user@example.com".into()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        disabled: false,
        scopes: Scope::from_tokens(["profile", "items:read"]),
        stamp: "user-stamp".into(),
        not_before: 0,
    };
    runtime.block_on(store.insert_user(&user)).unwrap();
    let token = RefreshRecord {
        id: "5f0d3c7e9a1b2c4d6e8f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d".into(),
        family_id: "bench-family".into(),
        client_id: "bench-client".into(),
        username: "bench-user".into(),
        scope: Scope::from_tokens(["profile"]),
        audience: "api".into(),
        user_stamp: "user-stamp".into(),
        client_stamp: "stamp".into(),
        issued_at: 1_000,
        expires_at: u64::from(u32::MAX),
        used_at: None,
        sealed_successor: None,
        successor_id: None,
    };
    runtime.block_on(store.insert_refresh(&token)).unwrap();
    let mut group = c.benchmark_group("store_reads");
    group.bench_function("refresh_context", |b| {
        b.iter(|| {
            runtime
                .block_on(store.refresh_context(black_box(&token.id)))
                .unwrap()
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
