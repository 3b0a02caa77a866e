//! The reqwest-middleware and tower integrations against a real API and token endpoint: the
//! bearer header goes on for the bound origin only, and a 401 (RFC 6750 §3.1) drops the token.
#![cfg(all(feature = "reqwest-middleware", feature = "tower"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::TokenServer;
use oauth2_token_source::middleware::BearerMiddleware;
use oauth2_token_source::tower::BearerLayer;
use oauth2_token_source::{TokenRequest, TokenSource};
use std::time::Duration;
use tower::{Layer, ServiceExt};

#[tokio::test]
async fn middleware_sends_the_bearer_token_rfc6750_2_1() {
    let server = TokenServer::start().await;
    let source = TokenSource::new(server.config().build()).unwrap();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::new(source, server.url.parse().unwrap()))
        .build();
    for _ in 0..3 {
        let response = http
            .get(format!("{}/api", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        *server.state.api_calls.lock().unwrap(),
        ["Bearer token-1", "Bearer token-1", "Bearer token-1"]
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn middleware_retries_once_with_a_new_token_after_a_401_rfc6750_3_1() {
    let server = TokenServer::start().await;
    server
        .state
        .rejected
        .lock()
        .unwrap()
        .insert("token-1".into());
    // Invalidating a token just fetched is what this test does.
    let config = server.config().min_invalidate_interval(Duration::ZERO);
    let source = TokenSource::new(config.build()).unwrap();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::with_request(
            source,
            server.url.parse().unwrap(),
            TokenRequest::new().scope("items:write"),
        ))
        .build();
    let response = http
        .post(format!("{}/api", server.url))
        .body("{\"item\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        *server.state.api_calls.lock().unwrap(),
        ["Bearer token-1", "Bearer token-2"]
    );
    assert_eq!(server.requests(), 2);

    // A token the API keeps refusing: one retry, then the 401 is the answer.
    server
        .state
        .rejected
        .lock()
        .unwrap()
        .insert("token-3".into());
    server
        .state
        .rejected
        .lock()
        .unwrap()
        .insert("token-2".into());
    let response = http
        .get(format!("{}/api", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(server.requests(), 3);
}

#[tokio::test]
async fn tower_layer_adds_the_token_and_drops_it_after_a_401_rfc6750_3_1() {
    let server = TokenServer::start().await;
    server
        .state
        .rejected
        .lock()
        .unwrap()
        .insert("token-1".into());
    let config = server.config().min_invalidate_interval(Duration::ZERO);
    let source = TokenSource::new(config.build()).unwrap();
    let http = reqwest::Client::new();
    let api = format!("{}/api", server.url);
    // The inner service sends the http::Request with reqwest, as a client stack would.
    let inner = tower::service_fn(move |request: http::Request<String>| {
        let http = http.clone();
        async move {
            let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
            let response = http.execute(request).await?;
            let answer = http::Response::builder().status(response.status());
            Ok::<_, reqwest::Error>(answer.body(()).unwrap())
        }
    });
    let service = BearerLayer::new(source, server.url.parse().unwrap()).layer(inner);
    let get = || {
        http::Request::get(api.as_str())
            .body(String::new())
            .unwrap()
    };
    let first = service.clone().oneshot(get()).await.unwrap();
    assert_eq!(first.status(), 401);
    let second = service.clone().oneshot(get()).await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(
        *server.state.api_calls.lock().unwrap(),
        ["Bearer token-1", "Bearer token-2"]
    );
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn middleware_keeps_a_refused_fresh_token_and_does_not_resend_rfc6750_3_1() {
    // The API refuses every token (a wrong audience): within the minimum interval the token is
    // kept, and each call is one API request and no token request.
    let server = TokenServer::start().await;
    server
        .state
        .rejected
        .lock()
        .unwrap()
        .extend(["token-1".to_owned(), "token-2".to_owned()]);
    let source = TokenSource::new(server.config().build()).unwrap();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::new(source, server.url.parse().unwrap()))
        .build();
    for _ in 0..5 {
        let response = http
            .get(format!("{}/api", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    assert_eq!(server.state.api_calls.lock().unwrap().len(), 5);
    assert_eq!(server.requests(), 1);
}

/// A client that sends an `http::Request` with reqwest, as a client stack would.
fn reqwest_service() -> impl tower::Service<
    http::Request<String>,
    Response = http::Response<()>,
    Error = reqwest::Error,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let http = reqwest::Client::new();
    tower::service_fn(move |request: http::Request<String>| {
        let http = http.clone();
        async move {
            let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
            let response = http.execute(request).await?;
            let answer = http::Response::builder().status(response.status());
            Ok::<_, reqwest::Error>(answer.body(()).unwrap())
        }
    })
}

#[tokio::test]
async fn requests_to_another_origin_carry_no_token_rfc6750_2_1() {
    let server = TokenServer::start().await;
    let elsewhere = TokenServer::start().await;
    let port = server.url.rsplit(':').next().unwrap().to_owned();
    // Another port, and another host name for the same port, are other origins.
    let others = [
        format!("{}/api", elsewhere.url),
        format!("http://localhost:{port}/api"),
    ];
    let source = TokenSource::new(server.config().build()).unwrap();

    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::new(
            source.clone(),
            format!("{}/base/path", server.url).parse().unwrap(),
        ))
        .build();
    for url in &others {
        assert_eq!(http.get(url).send().await.unwrap().status(), 200);
    }
    let bound = http.get(format!("{}/api", server.url)).send();
    assert_eq!(bound.await.unwrap().status(), 200);

    let service = BearerLayer::new(source, server.url.parse().unwrap()).layer(reqwest_service());
    for url in &others {
        let request = http::Request::get(url.as_str())
            .body(String::new())
            .unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let request = http::Request::get(format!("{}/api", server.url))
        .body(String::new())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);

    // The other origins saw no Authorization header; the bound one saw the token twice.
    assert_eq!(*elsewhere.state.api_calls.lock().unwrap(), ["", ""]);
    assert_eq!(
        *server.state.api_calls.lock().unwrap(),
        ["", "Bearer token-1", "", "Bearer token-1"]
    );
    assert_eq!(server.requests(), 1);
}
