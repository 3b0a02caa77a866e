//! Bad input at the edges: every malformed request to `POST /token` gets a clean 4xx with the
//! RFC 6749 §5.2 JSON body and `Cache-Control: no-store`, and leaves the server serving; every
//! malformed `Authorization` header at the resource server gets an RFC 6750 §3 challenge.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auth_server::store::UserRecord;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use system_tests::reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use system_tests::{challenge, metric_value, TestAuth, TestResource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FORM: &str = "application/x-www-form-urlencoded";
const PASSWORD: &str = "correct horse battery staple";
const TEN_MEGABYTES: usize = 10 * 1024 * 1024;

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
    let ready = auth.http.get(auth.url("/readyz")).send().await.unwrap();
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

/// RFC 6749 §5.2: `%zz` and a lone `%` are not valid escapes; whether the form parser refuses
/// them or keeps them literally, the answer is a JSON error, never plain text or a 5xx.
#[tokio::test]
async fn undecodable_percent_escapes_get_a_json_error_rfc6749_5_2() {
    let auth = auth_with_user().await;

    for body in [
        "grant_type=password&username=%zz&password=%",
        "grant_type=%zz",
        "grant_type=password&username=bob%&password=%%%",
        "%zz=%zz",
    ] {
        let reply = post_token(&auth, Some(FORM), body).await;
        reply.assert_oauth_error(
            &[400],
            &["invalid_request", "invalid_grant", "unsupported_grant_type"],
            &format!("form {body:?}"),
        );
    }

    assert_still_serving(&auth).await;
}

/// RFC 6749 §5.2: a body labelled as a form that is something else is `invalid_request`.
#[tokio::test]
async fn body_that_is_not_a_form_is_invalid_request_rfc6749_5_2() {
    let auth = auth_with_user().await;

    for body in [
        r#"{"grant_type": "password", "username": "alice", "password": "x"}"#,
        "<token><grant_type>password</grant_type></token>",
        "&&&===&=&",
        "",
    ] {
        let reply = post_token(&auth, Some(FORM), body).await;
        reply.assert_oauth_error(&[400], &["invalid_request"], &format!("form {body:?}"));
    }

    assert_still_serving(&auth).await;
}

/// RFC 6749 §3.2: the token endpoint takes `application/x-www-form-urlencoded`; JSON, plain text
/// or no content type is refused (415 or 400) with the RFC 6749 §5.2 JSON body.
#[tokio::test]
async fn body_that_is_not_form_encoded_is_refused_with_a_json_error_rfc6749_3_2() {
    let auth = auth_with_user().await;
    let json_body = r#"{"grant_type": "password", "username": "alice", "password": "correct horse battery staple"}"#;

    for content_type in [
        Some("application/json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let reply = post_token(&auth, content_type, json_body).await;
        reply.assert_oauth_error(
            &[400, 415],
            &["invalid_request"],
            &format!("content type {content_type:?}"),
        );
    }

    assert_still_serving(&auth).await;
}

/// RFC 6749 Appendix B: forms are UTF-8. Raw or percent-encoded bytes that are not UTF-8 get a
/// JSON error, never a 5xx.
#[tokio::test]
async fn invalid_utf8_in_the_body_gets_a_json_error_rfc6749_5_2() {
    let auth = auth_with_user().await;

    let bodies: [&[u8]; 4] = [
        b"grant_type=password&username=\xff\xfe&password=x",
        b"grant_type=pass\xc3\x28word&username=alice&password=x",
        b"grant_type=password&username=%ff%fe&password=%c3%28",
        b"\xff\xff\xff\xff",
    ];
    for body in bodies {
        let reply = post_token(&auth, Some(FORM), body.to_vec()).await;
        reply.assert_oauth_error(
            &[400],
            &["invalid_request", "invalid_grant", "unsupported_grant_type"],
            &format!("body {:?}", String::from_utf8_lossy(body)),
        );
    }

    assert_still_serving(&auth).await;
}

/// A body over the limit, declared by `Content-Length`, is refused with 413 (RFC 9110 §15.5.14)
/// and the JSON error shape.
#[tokio::test]
async fn ten_megabyte_body_with_content_length_is_413_with_a_json_error_rfc6749_5_2() {
    let auth = auth_with_user().await;
    let mut body = b"grant_type=password&username=alice&password=".to_vec();
    body.resize(TEN_MEGABYTES, b'a');

    let reply = post_token(&auth, Some(FORM), body).await;

    // Checked first so that a failure below is about the answer alone.
    assert_still_serving(&auth).await;
    reply.assert_oauth_error(&[413], &["invalid_request"], "10 MB with Content-Length");
}

/// The limit holds for a chunked body without `Content-Length` too: 413, not a 10 MB read.
#[tokio::test]
async fn ten_megabyte_chunked_body_without_content_length_is_413_with_a_json_error_rfc6749_5_2() {
    let auth = auth_with_user().await;
    let head = format!(
        "POST /token HTTP/1.1\r\nhost: {}\r\ncontent-type: {FORM}\r\ntransfer-encoding: chunked\r\n\r\n",
        auth.addr
    );

    let reply = raw_chunked_request(auth.addr, head, TEN_MEGABYTES).await;

    // Checked first so that a failure below is about the answer alone.
    assert_still_serving(&auth).await;
    reply.assert_oauth_error(&[413], &["invalid_request"], "10 MB chunked");
}

/// RFC 6749 §5.2: a `Basic` header that does not decode to `id:secret` is failed client
/// authentication: 401 `invalid_client` with a `WWW-Authenticate: Basic` challenge.
#[tokio::test]
async fn malformed_basic_header_is_401_invalid_client_with_a_basic_challenge_rfc6749_5_2() {
    let auth = auth_with_user().await;
    let without_colon = format!("Basic {}", STANDARD.encode("client-without-colon"));
    let empty_id = format!("Basic {}", STANDARD.encode(":secret"));
    let headers = [
        HeaderValue::from_static("Basic !!!"),
        HeaderValue::from_str(&without_colon).unwrap(),
        HeaderValue::from_str(&empty_id).unwrap(),
        HeaderValue::from_static("Basic"),
        HeaderValue::from_static("Basic ===="),
        HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
    ];

    for header in headers {
        let response = auth
            .http
            .post(auth.url("/token"))
            .header(AUTHORIZATION, header.clone())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        let reply = Reply::read(response).await;
        let why = format!("Authorization {header:?}");
        reply.assert_oauth_error(&[401], &["invalid_client"], &why);
        assert!(
            reply.header("www-authenticate").starts_with("Basic"),
            "{why}: challenge {:?}",
            reply.header("www-authenticate")
        );
    }

    assert_still_serving(&auth).await;
}

/// RFC 6749 §5.2: a grant type the server does not know is `unsupported_grant_type`.
#[tokio::test]
async fn unknown_grant_type_is_unsupported_grant_type_rfc6749_5_2() {
    let auth = auth_with_user().await;

    for grant_type in [
        "authorization_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "PASSWORD",
        "password ",
    ] {
        let reply = Reply::read(
            auth.token(&[
                ("grant_type", grant_type),
                ("username", "alice"),
                ("password", PASSWORD),
            ])
            .await,
        )
        .await;
        reply.assert_oauth_error(
            &[400],
            &["unsupported_grant_type"],
            &format!("grant_type {grant_type:?}"),
        );
    }

    assert_still_serving(&auth).await;
}

/// RFC 6749 §5.2: a request without `grant_type` (or with an empty one) is `invalid_request`.
#[tokio::test]
async fn missing_grant_type_is_invalid_request_rfc6749_5_2() {
    let auth = auth_with_user().await;

    let missing = Reply::read(
        auth.token(&[("username", "alice"), ("password", PASSWORD)])
            .await,
    )
    .await;
    missing.assert_oauth_error(&[400], &["invalid_request"], "no grant_type");
    let empty = Reply::read(
        auth.token(&[
            ("grant_type", ""),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .await,
    )
    .await;
    empty.assert_oauth_error(&[400], &["invalid_request"], "empty grant_type");

    assert_still_serving(&auth).await;
}

/// RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once", and
/// §5.2 names a repeated parameter as `invalid_request`, even when both values agree.
#[tokio::test]
async fn repeated_parameters_are_invalid_request_rfc6749_3_2() {
    let auth = auth_with_user().await;
    let base = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", PASSWORD),
    ];

    for (name, value) in [
        ("grant_type", "password"),
        ("grant_type", "client_credentials"),
        ("username", "alice"),
        ("username", "mallory"),
        ("password", PASSWORD),
        ("scope", ""),
    ] {
        let mut form = base.to_vec();
        if !base.iter().any(|(present, _)| *present == name) {
            form.push((name, value));
        }
        form.push((name, value));
        let reply = Reply::read(auth.token(&form).await).await;
        reply.assert_oauth_error(
            &[400],
            &["invalid_request"],
            &format!("{name} twice, the second {value:?}"),
        );
    }

    assert_still_serving(&auth).await;
}

/// `GET /users/me` with `authorization` as the raw header value.
async fn get_me_with(
    api: &TestResource,
    authorization: &'static [u8],
) -> system_tests::reqwest::Response {
    api.http
        .get(api.url("/users/me"))
        .header(
            AUTHORIZATION,
            HeaderValue::from_bytes(authorization).unwrap(),
        )
        .send()
        .await
        .unwrap()
}

/// RFC 6750 §3: credentials of another scheme get a 4xx and a `Bearer` challenge, so that the
/// client learns which scheme the resource takes.
#[tokio::test]
async fn basic_credentials_at_the_resource_server_get_a_bearer_challenge_rfc6750_3() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;

    for authorization in [
        &b"Basic xyz"[..],
        b"Basic YWxpY2U6c2VjcmV0",
        b"Token abc",
        b"xyz",
    ] {
        let response = get_me_with(&api, authorization).await;
        let why = String::from_utf8_lossy(authorization);
        assert!(
            response.status().is_client_error(),
            "{why}: status {}",
            response.status()
        );
        assert!(
            challenge(&response).starts_with("Bearer"),
            "{why}: challenge {:?}",
            challenge(&response)
        );
    }
}

/// RFC 6750 §3: `Bearer` with no token gets a 4xx and a `Bearer` challenge.
#[tokio::test]
async fn empty_bearer_token_gets_a_bearer_challenge_rfc6750_3() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;

    for authorization in [&b"Bearer"[..], b"Bearer ", b"Bearer    ", b"bearer"] {
        let response = get_me_with(&api, authorization).await;
        let why = format!("{:?}", String::from_utf8_lossy(authorization));
        assert!(
            response.status().is_client_error(),
            "{why}: status {}",
            response.status()
        );
        assert!(
            challenge(&response).starts_with("Bearer"),
            "{why}: challenge {:?}",
            challenge(&response)
        );
    }
}

/// RFC 6750 §3.1: a request with no authentication at all gets 401 and a bare challenge with no
/// error code ("the resource server SHOULD NOT include an error code").
#[tokio::test]
async fn missing_authorization_is_401_with_a_bare_bearer_challenge_rfc6750_3_1() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;

    let response = api.http.get(api.url("/users/me")).send().await.unwrap();

    assert_eq!(response.status(), 401);
    let www_authenticate = challenge(&response);
    assert_eq!(www_authenticate, r#"Bearer realm="api""#);
    assert!(!www_authenticate.contains("error="));
}

/// A stored bcrypt hash costlier than the bound (here the format's maximum, 31: a day of work)
/// is never run: the login is refused at once, as a wrong password is (RFC 6749 §5.2).
#[tokio::test]
async fn a_stored_bcrypt_hash_of_cost_31_is_invalid_grant_at_once_rfc6749_5_2() {
    let auth = TestAuth::spawn().await;
    auth.store
        .insert_user(&UserRecord {
            username: "imported".to_owned(),
            full_name: None,
            email: None,
            password_hash: "$2b$31$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW"
                .to_owned(),
            disabled: false,
            scopes: shared::Scope::default(),
            stamp: String::new(),
            not_before: 0,
        })
        .await
        .unwrap();

    let started = Instant::now();
    let reply = Reply::read(
        auth.token(&[
            ("grant_type", "password"),
            ("username", "imported"),
            ("password", "secret"),
        ])
        .await,
    )
    .await;
    let body = reply.assert_oauth_error(&[400], &["invalid_grant"], "bcrypt cost 31");
    assert_eq!(body["error_description"], "wrong username or password");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
}

/// A username no user can have (over 256 bytes, or holding a control character) gets the
/// answer an unknown user gets, `invalid_grant` (RFC 6749 §5.2), without a password check and
/// without a throttle slot: with limits of one failure, a counted attempt would make the next
/// one `429`.
#[tokio::test]
async fn usernames_no_user_can_have_are_invalid_grant_without_a_check_rfc6749_5_2() {
    let auth = TestAuth::spawn_with(|settings| {
        settings.login_max_failures_per_address = 1;
        settings.login_max_failures_per_user = 1;
    })
    .await;
    let longest = "é".repeat(128);
    auth.add_user(&longest, PASSWORD, "").await;
    let checks = |metrics: &str| metric_value(metrics, "password_hash_wait_seconds_count", &[]);
    let checks_before = checks(&auth.metrics().await);

    for username in [
        "x".repeat(257),
        "é".repeat(129),
        "x".repeat(60_000),
        "alice\n".to_owned(),
        "alice\r\n2030-01-01T00:00:00Z  INFO forged".to_owned(),
        "a\u{0}b".to_owned(),
        "a\u{1b}[2Jb".to_owned(),
        "a\u{85}b".to_owned(),
    ] {
        for attempt in 0..3 {
            let started = Instant::now();
            let reply = Reply::read(
                auth.token(&[
                    ("grant_type", "password"),
                    ("username", &username),
                    ("password", "anything"),
                ])
                .await,
            )
            .await;
            let why = format!("{} bytes, attempt {attempt}", username.len());
            let body = reply.assert_oauth_error(&[400], &["invalid_grant"], &why);
            assert_eq!(
                body["error_description"], "wrong username or password",
                "{why}"
            );
            assert!(started.elapsed() < Duration::from_secs(2), "{why}");
        }
    }
    assert_eq!(
        checks(&auth.metrics().await),
        checks_before,
        "no password was checked for them"
    );

    let unknown = Reply::read(
        auth.token(&[
            ("grant_type", "password"),
            ("username", "nobody"),
            ("password", "anything"),
        ])
        .await,
    )
    .await;
    let body = unknown.assert_oauth_error(&[400], &["invalid_grant"], "an unknown user");
    assert_eq!(
        body["error_description"], "wrong username or password",
        "the same answer as an unknown user"
    );
    assert_eq!(
        auth.password_grant(&longest, PASSWORD).await.token_type,
        "Bearer",
        "a username of 256 bytes logs in"
    );
}
