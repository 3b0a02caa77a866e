//! The price of a cached token: what a service pays on every outgoing call once
//! `oauth2-token-source` holds a token (a lock, a clock read and a reference count). The target
//! is under one microsecond; the last line prints the mean of a plain loop beside criterion's
//! figures.
//!
//! `cargo bench -p benchmarks --bench token_source` (add `-- --quick` for a fast pass).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark without its fixture fails loudly

use std::hint::black_box;
use std::time::Instant;

use benchmarks::ready;
use criterion::{criterion_group, criterion_main, Criterion};
use oauth2_token_source::{AccessToken, ClientSecret, Config, Endpoint, TokenRequest, TokenSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A token endpoint that answers every request with one long-lived token.
async fn token_endpoint() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let body = r#"{"access_token":"bench-token","token_type":"Bearer","expires_in":86400}"#;
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = vec![0; 8192];
            let _ = stream.read(&mut request).await;
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    url
}

fn cached_token(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let url = runtime.block_on(token_endpoint());
    let config = Config::builder(
        Endpoint::Token(url.parse().unwrap()),
        "bench",
        ClientSecret::new("bench-secret"),
    )
    .build();
    let source = TokenSource::new(config).unwrap();
    let scoped = TokenRequest::new().scope("items:write");
    let first: AccessToken = runtime.block_on(source.token()).unwrap();
    runtime.block_on(source.token_for(&scoped)).unwrap();

    let mut group = c.benchmark_group("token_source");
    group.bench_function("cached_token", |b| {
        b.iter(|| {
            ready(black_box(&source).token())
                .expect("a cached token is ready at once")
                .unwrap()
        })
    });
    group.bench_function("cached_token_for_scope", |b| {
        b.iter(|| {
            ready(black_box(&source).token_for(black_box(&scoped)))
                .expect("a cached token is ready at once")
                .unwrap()
        })
    });
    group.finish();

    let calls = 1_000_000u32;
    let started = Instant::now();
    for _ in 0..calls {
        let token = ready(black_box(&source).token())
            .expect("a cached token is ready at once")
            .unwrap();
        assert!(token == first);
    }
    let mean = started.elapsed() / calls;
    println!("cached TokenSource::token(): {mean:?} per call (target: under 1 µs)");
}

criterion_group!(benches, cached_token);
criterion_main!(benches);
