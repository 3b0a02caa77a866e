//! Request ids: a plain one given by the client is echoed, any other is replaced, and none can
//! smuggle a header into the response.

use std::time::Duration;

use system_tests::{reqwest, TestAuth, TestResource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn is_plain_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

async fn get_with_id(http: &reqwest::Client, url: &str, id: Option<&[u8]>) -> reqwest::Response {
    let mut request = http.get(url);
    if let Some(id) = id {
        request = request.header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(id).unwrap(),
        );
    }
    request.send().await.unwrap()
}

/// Sends `GET /livez` with a raw `X-Request-Id` line (which no HTTP client would send) and
/// returns the whole response as text.
async fn raw_get(addr: &str, id_line: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request =
        b"GET /livez HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Request-Id: ".to_vec();
    request.extend_from_slice(id_line);
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_plain_request_id_is_echoed_and_any_other_is_replaced() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;
    for (http, base) in [(&auth.http, auth.url.clone()), (&api.http, api.url.clone())] {
        let url = format!("{base}/livez");

        let given = get_with_id(http, &url, Some(b"abc-123")).await;
        assert_eq!(given.status(), 200);
        assert_eq!(request_id(&given), "abc-123", "{url}");

        let first = request_id(&get_with_id(http, &url, None).await);
        let second = request_id(&get_with_id(http, &url, None).await);
        assert!(
            is_plain_id(&first) && is_plain_id(&second),
            "{first} {second}"
        );
        assert_ne!(first, second, "made ids are unique");

        let long = "a".repeat(129);
        let hostile: [&[u8]; 6] = [
            b"abc 123",
            b"abc\t123",
            br#"x", "level":"ERROR"#,
            long.as_bytes(),
            "caf\u{e9}".as_bytes(),
            b"a=b;c",
        ];
        for id in hostile {
            let response = get_with_id(http, &url, Some(id)).await;
            assert_eq!(response.status(), 200);
            let replaced = request_id(&response);
            assert!(
                is_plain_id(&replaced) && replaced.as_bytes() != id,
                "{id:?} came back as {replaced:?}"
            );
        }

        // A line break ends the header (HTTP/1.1 parsers accept a bare LF), so what follows is
        // another request header: it is never echoed, and the id echoed is plain.
        let addr = base.trim_start_matches("http://");
        for line in [
            &b"evil\nX-Injected: yes"[..],
            b"evil\r\nX-Injected: yes",
            b"evil\r X-Injected: yes",
        ] {
            let response = raw_get(addr, line).await;
            let (head, _) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            assert!(
                head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.1 400"),
                "{head}"
            );
            assert!(!head.to_ascii_lowercase().contains("x-injected"), "{head}");
            let echoed = head.lines().find_map(|l| l.strip_prefix("x-request-id: "));
            assert!(echoed.is_none_or(is_plain_id), "{head}");
        }
    }
}
