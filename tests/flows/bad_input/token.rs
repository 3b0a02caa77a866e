//! Forms that parse but ask for nothing valid: a malformed Basic header, unknown or missing
//! grant types, repeated parameters, a stored hash too costly to check, impossible usernames.

use super::*;

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

/// A stored bcrypt hash costlier than the bound (here the format's maximum, 31: a day of work)
/// is never run: the login is refused at once, as a wrong password is (RFC 6749 §5.2).
#[tokio::test]
async fn a_stored_bcrypt_hash_of_cost_31_is_invalid_grant_at_once_rfc6749_5_2() {
    let auth = TestAuth::spawn().await;
    auth.add_user_with_hash(
        "imported",
        "$2b$31$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW",
        |_| {},
    )
    .await;

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
    let checks =
        |metrics: &str| metric_value(metrics, "auth_server_password_hash_wait_seconds_count", &[]);
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
