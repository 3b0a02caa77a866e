//! What the request-log middleware of both servers (`server_plumbing::telemetry::RequestLog`)
//! costs a request by itself: the same small poem app (a route table and a `/livez` that
//! answers at once) called with and without the middleware around it, so that the difference
//! is the middleware's own work: the request id made or echoed, the span, the log line, the
//! request counter and the latency histogram. On the servers' cheapest rows (`/livez`,
//! `/users/me` with a cached token) a whole request costs 8 to 10 µs of server time.
//!
//! Logging is filtered at `warn`, as `bench/run` runs the servers: the span and the `info` line
//! stop at their callsites' level check, so these figures leave out what they cost at the
//! servers' default `info` (formatting and writing a line per request). No sockets: each call
//! is `Endpoint::call` on a `Request` built in the loop; `bare_with_id` builds the same request
//! as `logged_echoed_id`, with its `x-request-id` header, so each logged case has a bare twin.
//!
//! `cargo bench -p benchmarks --bench request_log` (add `-- --quick` for a fast pass).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark without its fixture fails loudly

use std::hint::black_box;

use benchmarks::ready;
use criterion::{criterion_group, criterion_main, Criterion};
use poem::http::{Method, Uri};
use poem::{get, handler, Endpoint, EndpointExt, Request, Response, Route};
use server_plumbing::telemetry::{HttpMetrics, RequestLog};

#[handler]
fn livez() -> &'static str {
    "ok"
}

fn call(endpoint: &impl Endpoint<Output = Response>, request: Request) -> Response {
    ready(endpoint.call(request))
        .expect("the endpoints answer at once")
        .unwrap()
}

fn request(method: Method, id: Option<&'static str>) -> Request {
    let builder = Request::builder()
        .method(method)
        .uri(Uri::from_static("/livez"));
    match id {
        Some(id) => builder.header("x-request-id", id).finish(),
        None => builder.finish(),
    }
}

fn middleware(c: &mut Criterion) {
    let _ = tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::io::sink)
            .finish(),
    );
    let registry = prometheus::Registry::new();
    let metrics = HttpMetrics::new(&registry, resource_server::http::ROUTES).unwrap();
    let bare = Route::new().at("/livez", get(livez));
    let logged = Route::new()
        .at("/livez", get(livez))
        .with(RequestLog::new(metrics));
    assert_eq!(call(&logged, request(Method::GET, None)).status(), 200);

    let mut group = c.benchmark_group("request_log");
    group.bench_function("bare", |b| {
        b.iter(|| call(&bare, black_box(request(Method::GET, None))))
    });
    group.bench_function("bare_with_id", |b| {
        b.iter(|| {
            call(
                &bare,
                black_box(request(Method::GET, Some("bench-request-0123456789"))),
            )
        })
    });
    group.bench_function("logged_made_id", |b| {
        b.iter(|| call(&logged, black_box(request(Method::GET, None))))
    });
    group.bench_function("logged_echoed_id", |b| {
        b.iter(|| {
            call(
                &logged,
                black_box(request(Method::GET, Some("bench-request-0123456789"))),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, middleware);
criterion_main!(benches);
