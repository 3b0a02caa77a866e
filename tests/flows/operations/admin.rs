//! The admin address (`AUTH_ADMIN_LISTEN`, `RS_ADMIN_LISTEN`): metrics and health apart from
//! the public port, which then no longer serves `/metrics`.

use std::net::SocketAddr;

use system_tests::{metric_value, scrape_metrics, TestAuth, TestResource};
use test_kit::ports::free_port;

fn admin_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

#[tokio::test]
async fn auth_server_serves_metrics_and_health_on_the_admin_address_only() {
    let admin = admin_addr();
    let auth = TestAuth::spawn_with(|settings| settings.admin_listen = Some(admin)).await;
    let admin_url = format!("http://{admin}");

    let public = auth.http.get(auth.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "no metrics on the public port");
    for path in ["/livez", "/readyz"] {
        let response = auth
            .http
            .get(format!("{admin_url}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path} on the admin address");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        // Kept on the public port too, as the interface contract lists them there.
        assert_eq!(
            auth.get(path).await.status(),
            200,
            "{path} on the public port"
        );
    }
    // The API stays off the admin address.
    let token = auth
        .http
        .post(format!("{admin_url}/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 404);

    let text = scrape_metrics(&auth.http, &format!("{admin_url}/metrics")).await;
    assert_eq!(
        metric_value(
            &text,
            "auth_server_http_requests_total",
            &[("route", "/metrics"), ("status", "404")]
        ),
        1.0,
        "the public port's refusal is counted"
    );
    assert_eq!(
        metric_value(
            &text,
            "auth_server_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

#[tokio::test]
async fn resource_server_serves_metrics_and_health_on_the_admin_address_only() {
    let auth = TestAuth::spawn().await;
    let admin = admin_addr();
    let api = TestResource::spawn_configured(&auth.url, true, |settings| {
        settings.admin_listen = Some(admin);
    })
    .await;
    let admin_url = format!("http://{admin}");

    let public = api.http.get(api.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "no metrics on the public port");
    for path in ["/livez", "/readyz"] {
        let response = api
            .http
            .get(format!("{admin_url}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path} on the admin address");
        let on_public = api.http.get(api.url(path)).send().await.unwrap();
        assert_eq!(on_public.status(), 200, "{path} on the public port");
    }
    let me = api
        .http
        .get(format!("{admin_url}/users/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 404, "the API stays off the admin address");

    let text = scrape_metrics(&api.http, &format!("{admin_url}/metrics")).await;
    assert_eq!(
        metric_value(&text, "oauth2_jwt_verifier_jwks_keys", &[]),
        1.0,
        "the verifier's series keep their prefix"
    );
    assert_eq!(
        metric_value(
            &text,
            "resource_server_http_requests_total",
            &[("route", "/metrics"), ("status", "404")]
        ),
        1.0
    );
}

/// The admin listener runs the same accept loop with the configured limits, not defaults: a
/// client that stalls in its request head is cut off and counted, as on the public port, and a
/// head over `max_header_bytes` (set below the default here) is refused with 431.
#[tokio::test]
async fn the_admin_address_keeps_the_public_connection_limits() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let admin = admin_addr();
    let auth = TestAuth::spawn_with(|settings| {
        settings.admin_listen = Some(admin);
        settings.header_read_timeout = 1;
        settings.max_header_bytes = 8192;
    })
    .await;

    let mut stalled = tokio::net::TcpStream::connect(admin).await.unwrap();
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let mut received = Vec::new();
    // Closed by the server; a generous bound only so that a broken server fails the test.
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stalled.read(&mut buf).await {
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the stalled connection is closed");

    // 10 000 bytes: over the 8192 set, under the 16 KiB default.
    let large = "v".repeat(10_000);
    let mut crowded = tokio::net::TcpStream::connect(admin).await.unwrap();
    crowded
        .write_all(format!("GET /livez HTTP/1.1\r\nHost: a\r\nx-large: {large}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = vec![0u8; 64];
    let n = crowded.read(&mut answer).await.unwrap();
    let status_line = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(status_line.starts_with("HTTP/1.1 431"), "{status_line}");

    let text = scrape_metrics(&auth.http, &format!("http://{admin}/metrics")).await;
    assert!(
        metric_value(&text, "auth_server_http_connections_timed_out_total", &[]) >= 1.0,
        "{text}"
    );
}
