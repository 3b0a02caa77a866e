//! Bad input at the edges: every malformed request to `POST /token` gets a clean 4xx with the
//! RFC 6749 §5.2 JSON body and `Cache-Control: no-store`, and leaves the server serving; every
//! malformed `Authorization` header at the resource server gets an RFC 6750 §3 challenge.
//!
//! This file holds what the tests share: raw requests, and replies read to the end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use system_tests::reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use system_tests::{challenge, metric_value, TestAuth, TestResource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FORM: &str = "application/x-www-form-urlencoded";
const PASSWORD: &str = "correct horse battery staple";
const TEN_MEGABYTES: usize = 10 * 1024 * 1024;

mod body;
mod resource;
mod token;

/// A response read to the end, from reqwest or from a raw socket.
struct Reply {
    status: u16,
    /// Lower-case names.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    async fn read(response: system_tests::reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = response.bytes().await.unwrap().to_vec();
        Self {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    /// Asserts an RFC 6749 §5.2 error: a status in `statuses`, a JSON object whose `error` is
    /// one of `codes`, and `Cache-Control: no-store`. Every deviation is reported at once,
    /// with the whole response. Returns the body.
    fn assert_oauth_error(&self, statuses: &[u16], codes: &[&str], why: &str) -> Value {
        let mut problems = Vec::new();
        if !statuses.contains(&self.status) {
            problems.push(format!("status {} not in {statuses:?}", self.status));
        }
        if !self.header("content-type").starts_with("application/json") {
            problems.push(format!(
                "content-type {:?} is not application/json",
                self.header("content-type")
            ));
        }
        if !self.header("cache-control").contains("no-store") {
            problems.push(format!(
                "cache-control {:?} lacks no-store",
                self.header("cache-control")
            ));
        }
        let body: Value = serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            problems.push(format!("the body is not JSON: {err}"));
            Value::Null
        });
        match body.get("error").and_then(Value::as_str) {
            Some(code) if codes.contains(&code) => {}
            Some(code) => problems.push(format!("error {code:?} not in {codes:?}")),
            None => problems.push("no string `error` member".to_owned()),
        }
        if !body.get("error_description").is_none_or(Value::is_string) {
            problems.push("error_description is not a string".to_owned());
        }
        assert!(
            problems.is_empty(),
            "{why}: {}\n  headers: {:?}\n  body: {}",
            problems.join("; "),
            self.headers,
            String::from_utf8_lossy(&self.body)
        );
        body
    }
}

/// An auth-server with one user whose password grant must keep working.
async fn auth_with_user() -> TestAuth {
    let auth = TestAuth::spawn().await;
    auth.add_user("alice", PASSWORD, "").await;
    auth
}

/// After the bad input the server is ready and still issues tokens.
async fn assert_still_serving(auth: &TestAuth) {
    let ready = auth.get("/readyz").await;
    assert_eq!(ready.status(), 200, "/readyz after bad input");
    let tokens = auth.password_grant("alice", PASSWORD).await;
    assert!(!tokens.access_token.is_empty());
}

/// `POST /token` with `body` as is and, when given, `content_type`.
async fn post_token(
    auth: &TestAuth,
    content_type: Option<&str>,
    body: impl Into<system_tests::reqwest::Body>,
) -> Reply {
    let mut request = auth.http.post(auth.url("/token")).body(body);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    Reply::read(request.send().await.unwrap()).await
}

/// Sends `head` and then a `Transfer-Encoding: chunked` body of `total` bytes in 64 KiB chunks
/// over a raw socket, while reading the answer: the server may answer, and close, before the
/// body is all sent. Write errors after that are expected and ignored.
async fn raw_chunked_request(addr: SocketAddr, head: String, total: usize) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let size = chunk.len().min(total - sent);
            writer.write_all(format!("{size:x}\r\n").as_bytes()).await?;
            writer.write_all(&chunk[..size]).await?;
            writer.write_all(b"\r\n").await?;
            sent += size;
        }
        writer.write_all(b"0\r\n\r\n").await?;
        writer.flush().await?;
        // Keep the write half open so that the server sees no early end of input.
        Ok::<_, std::io::Error>(writer)
    });
    let reply = tokio::time::timeout(Duration::from_secs(30), async {
        let mut received = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            if let Some(reply) = parse_response(&received) {
                return reply;
            }
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => {
                    return parse_response(&received).unwrap_or_else(|| {
                        panic!(
                            "connection ended before a full response: {:?}",
                            String::from_utf8_lossy(&received)
                        )
                    })
                }
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .expect("no response within 30 s");
    sender.abort();
    reply
}

/// A complete HTTP/1.1 response in `bytes` (content-length or chunked body), or `None` yet.
fn parse_response(bytes: &[u8]) -> Option<Reply> {
    let end_of_head = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end_of_head]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &bytes[end_of_head + 4..];
    let body = if let Some(length) = headers.get("content-length") {
        rest.get(..length.parse::<usize>().ok()?)?.to_vec()
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        let mut body = Vec::new();
        let mut rest = rest;
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16)
                    .ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break body;
            }
            body.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
    } else {
        return None;
    };
    Some(Reply {
        status,
        headers,
        body,
    })
}
