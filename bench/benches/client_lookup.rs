//! What a token request pays to establish its client (RFC 6749 §2.3.1), the piece the
//! client_credentials profile names besides the signature: the store read of the client (the
//! embedded SQLite store: a hand-off to its connection thread and back) against the record held
//! by `AUTH_CLIENT_CACHE`, and the whole `client_auth::authenticate` (lookup, two keyed-hash
//! checks) either way.
//!
//! `cargo bench -p benchmarks --bench client_lookup` (add `-- --quick` for a fast pass).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark without its fixture fails loudly

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use auth_server::oauth::client_auth::{authenticate, hash_secret, Credentials};
use auth_server::oauth::ClientCache;
use auth_server::store::{ClientRecord, GrantType, Store};
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
}

criterion_group!(benches, lookups);
criterion_main!(benches);
