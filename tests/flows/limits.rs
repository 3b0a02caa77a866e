//! Limits on what a client may send and how slowly: request heads (size, field count, read
//! time), bodies (size, read time, form fields), bearer tokens, and open connections. Slow
//! clients are real TCP connections that send part of a request and stall or trickle.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use system_tests::{metric_value, TestAuth, TestResource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the tests give the servers to send a request head's worth of answer, or to close
/// a stalled connection, beyond the configured timeout: generous, as the machine may be busy.
const SLACK: Duration = Duration::from_secs(10);

/// A connection that sent `bytes` and then nothing more.
async fn stalled(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection (or `within` passes), returning what came.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

/// The status of a raw HTTP/1.1 response.
fn status_of(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

/// Sends one raw request and returns the whole response.
async fn raw_request(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = stalled(addr, request).await;
    read_until_closed(&mut stream, SLACK)
        .await
        .expect("the server answered and closed")
}

const SVC_SECRET: &str = "svc-secret-0123456789-0123456789-abcd";

/// Registers `svc`, a client with the client_credentials grant and the scope `items:read`.
async fn add_svc(auth: &TestAuth) {
    auth.add_client(
        "svc",
        SVC_SECRET,
        &["client_credentials"],
        "items:read",
        &[],
    )
    .await;
}

const PARTIAL_HEAD: &[u8] = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";

/// Many stalled connections on both servers; other clients are served meanwhile, and the
/// stalled ones are cut off once the header read timeout passes.
#[tokio::test]
async fn stalled_and_trickling_clients_do_not_tie_up_the_servers() {
    let auth = TestAuth::spawn_with(|s| s.header_read_timeout = 2).await;
    let resource =
        TestResource::spawn_configured(&auth.url, true, |s| s.header_read_timeout = 2).await;
    let rs_addr: SocketAddr = resource.url.trim_start_matches("http://").parse().unwrap();
    add_svc(&auth).await;

    let mut held = Vec::new();
    for _ in 0..150 {
        held.push(stalled(auth.addr, PARTIAL_HEAD).await);
        held.push(stalled(rs_addr, PARTIAL_HEAD).await);
    }
    // One client trickles a byte every 200 ms: never idle, still cut off at the deadline.
    let mut trickler = stalled(auth.addr, PARTIAL_HEAD).await;
    let trickling = tokio::spawn(async move {
        let started = Instant::now();
        while trickler.write_all(b"x").await.is_ok() && started.elapsed() < SLACK * 3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        started.elapsed()
    });

    // Everyone else is served while those connections are held.
    for _ in 0..5 {
        assert_eq!(auth.get("/livez").await.status(), 200);
        assert_eq!(auth.get("/.well-known/jwks.json").await.status(), 200);
        let token = auth
            .client_credentials("svc", SVC_SECRET, "items:read")
            .await;
        let items = resource.get("/items", &token.access_token).await;
        assert_eq!(items.status(), 200);
    }

    // The stalled connections are closed by the servers, without an answer or with a 408.
    for mut stream in held {
        let received = read_until_closed(&mut stream, Duration::from_secs(2) + SLACK)
            .await
            .expect("a stalled connection was closed by the server");
        assert!(
            received.is_empty() || status_of(&received) == 408,
            "a stalled client got {:?}",
            String::from_utf8_lossy(&received)
        );
    }
    let trickled_for = trickling.await.unwrap();
    assert!(
        trickled_for < Duration::from_secs(2) + SLACK,
        "a trickling client was cut off only after {trickled_for:?}"
    );

    let timed_out = metric_value(
        &auth.metrics().await,
        "auth_server_http_connections_timed_out_total",
        &[],
    );
    assert!(timed_out >= 150.0, "{timed_out} connections timed out");
}

/// At the connection cap the server stops accepting: a further client waits in the backlog and
/// is served once a stalled connection is cut off, instead of being refused.
#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_and_are_served() {
    let auth = TestAuth::spawn_with(|s| {
        s.max_connections = 4;
        s.header_read_timeout = 2;
    })
    .await;
    // The harness' own readiness check used one slot; it is idle now and times out too.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(stalled(auth.addr, PARTIAL_HEAD).await);
    }
    let started = Instant::now();
    let response = raw_request(
        auth.addr,
        b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&response), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the fifth connection was served before any slot freed ({:?}): the cap did not hold",
        started.elapsed()
    );
}

/// RFC 9110 §15.5.20 (431): a head over the size or field-count limit is refused before any
/// handler runs, on both servers.
#[tokio::test]
async fn oversized_request_heads_get_431() {
    let auth = TestAuth::spawn_with(|s| s.max_header_bytes = 8192).await;
    let resource = TestResource::spawn_for(&auth.url, true).await;
    let rs_addr: SocketAddr = resource.url.trim_start_matches("http://").parse().unwrap();

    let big = format!(
        "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(
        status_of(&raw_request(auth.addr, big.as_bytes()).await),
        431
    );
    let bigger = format!(
        "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(
        status_of(&raw_request(rs_addr, bigger.as_bytes()).await),
        431
    );

    let mut many = String::from("GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..80 {
        many.push_str(&format!("X-Field-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    assert_eq!(
        status_of(&raw_request(auth.addr, many.as_bytes()).await),
        431
    );
    assert_eq!(status_of(&raw_request(rs_addr, many.as_bytes()).await), 431);

    // Within the limits, the same servers answer.
    let fine = auth.get("/livez").await;
    assert_eq!(fine.status(), 200);
}

/// A body that trickles in is cut off at the body read timeout with RFC 6749 §5.2 JSON, and
/// the server goes on serving.
#[tokio::test]
async fn slow_body_is_refused_with_408_rfc6749_5_2() {
    let auth = TestAuth::spawn_with(|s| s.body_read_timeout = 1).await;
    let head = "POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n\
                grant_type=client_credentials";
    let mut stream = stalled(auth.addr, head.as_bytes()).await;
    let response = read_until_closed(&mut stream, SLACK)
        .await
        .expect("the server answered a stalled body");
    assert_eq!(status_of(&response), 408);
    let text = String::from_utf8_lossy(&response);
    assert!(text.contains(r#""error":"invalid_request""#), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{text}"
    );

    let fine = auth.get("/livez").await;
    assert_eq!(fine.status(), 200);
}

/// A form with more fields than the limit is refused as invalid_request (RFC 6749 §5.2) before
/// it is parsed; at the limit it is processed as usual.
#[tokio::test]
async fn forms_with_too_many_fields_are_invalid_request_rfc6749_5_2() {
    let auth = TestAuth::spawn_with(|s| s.max_form_fields = 8).await;
    add_svc(&auth).await;
    let mut fields = vec![
        ("grant_type", "client_credentials"),
        ("client_id", "svc"),
        ("client_secret", SVC_SECRET),
    ];
    let at_limit: Vec<_> = fields
        .iter()
        .copied()
        .chain((0..5).map(|_| ("x", "1")))
        .collect();
    let fine = auth.token(&at_limit).await;
    assert_eq!(fine.status(), 200, "{}", fine.text().await.unwrap());

    fields.extend((0..6).map(|_| ("x", "1")));
    for endpoint in ["/token", "/revoke", "/introspect"] {
        let over = auth
            .http
            .post(auth.url(endpoint))
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(over.status(), 400, "{endpoint}");
        let body: serde_json::Value = over.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{endpoint}");
    }
}

/// RFC 9110 §15.5.6: a 405 carries `Allow`.
#[tokio::test]
async fn method_not_allowed_names_the_allowed_methods_rfc9110_15_5_6() {
    let auth = TestAuth::spawn().await;
    for (method, path, allowed) in [
        ("GET", "/token", "POST"),
        ("PUT", "/introspect", "POST"),
        ("POST", "/.well-known/jwks.json", "GET"),
    ] {
        let response = auth
            .http
            .request(method.parse().unwrap(), auth.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], allowed, "{method} {path}");
    }
    let resource = TestResource::spawn(&auth).await;
    for (method, path) in [("POST", "/users/me"), ("DELETE", "/items")] {
        let response = resource
            .http
            .request(method.parse().unwrap(), resource.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert_eq!(response.headers()["allow"], "GET", "{method} {path}");
    }
}

/// A bearer token over the resource server's limit is refused without being parsed
/// (RFC 6750 §3.1 invalid_token); one just under it reaches the verifier.
#[tokio::test]
async fn bearer_tokens_over_the_limit_are_refused_rfc6750_3_1() {
    let auth = TestAuth::spawn().await;
    let resource =
        TestResource::spawn_configured(&auth.url, true, |s| s.max_token_bytes = 1024).await;
    for length in [1025, 4000] {
        let response = resource.get_me(&"a".repeat(length)).await;
        assert_eq!(response.status(), 401, "{length}");
        let challenge = system_tests::challenge(&response);
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
    }
    let token = auth
        .add_logged_in_user("alice", "correct horse battery staple", "")
        .await;
    assert!(token.access_token.len() <= 1024);
    assert_eq!(resource.get_me(&token.access_token).await.status(), 200);
}
