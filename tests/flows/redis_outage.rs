//! The auth-server while its Redis store is away: `/token` answers 503 `temporarily_unavailable`
//! in the RFC 6749 §5.2 shape within a couple of seconds, `/readyz` turns false while `/livez`
//! stays true and the JWKS is still served, the resource server goes on verifying tokens
//! locally, and service comes back by itself when Redis does. Each test stops its own private
//! `redis-server` (with an append-only file, so that what Redis acknowledged survives the
//! restart), never the shared one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use server_plumbing::wire::TokenResponse;
use system_tests::{private_redis, retry_after, TestAuth, TestResource};

/// Longest a request may take to fail while Redis is away: the store's two-second deadline and
/// some room for a loaded machine.
const FAIL_FAST: Duration = Duration::from_secs(3);

/// Longest the service may take to come back after Redis does.
const RECOVERY: Duration = Duration::from_secs(10);

const PASSWORD_GRANT: &[(&str, &str)] = &[
    ("grant_type", "password"),
    ("username", "alice"),
    ("password", "alice-pw-1"),
];

/// What `request` gave, and how long it took.
async fn timed<T>(request: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let outcome = request.await;
    (outcome, started.elapsed())
}

/// Asserts a 503 `temporarily_unavailable` in the RFC 6749 §5.2 shape, with `Retry-After`.
async fn assert_temporarily_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
    let retry_after = retry_after(&response);
    assert!(
        (1..=60).contains(&retry_after),
        "{what}: Retry-After {retry_after}"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    assert!(body["error_description"].is_string(), "{what}: {body}");
}

/// Polls the password grant until it succeeds, for at most [`RECOVERY`].
async fn wait_for_token(auth: &TestAuth) -> TokenResponse {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let response = auth.token(PASSWORD_GRANT).await;
        if response.status() == 200 {
            return response.json().await.unwrap();
        }
        assert_eq!(
            response.status(),
            503,
            "only 503 while the store comes back"
        );
        assert!(
            Instant::now() < deadline,
            "no token within {RECOVERY:?} of Redis coming back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redis_outage_gives_503_temporarily_unavailable_and_recovers_rfc6749_5_2() {
    let mut redis = private_redis();
    let namespace = redis.namespace("outage-503");
    let auth = Arc::new(TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await);
    let before = auth.add_logged_in_user("alice", "alice-pw-1", "read").await;
    let refresh_token = before.refresh_token.clone().unwrap();
    let refresh_grant = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
    ];

    redis.stop();

    let (response, elapsed) = timed(auth.token(PASSWORD_GRANT)).await;
    assert!(
        elapsed < FAIL_FAST,
        "the password grant took {elapsed:?} to fail"
    );
    assert_temporarily_unavailable(response, "password grant").await;
    let (response, elapsed) = timed(auth.token(&refresh_grant)).await;
    assert!(
        elapsed < FAIL_FAST,
        "the refresh grant took {elapsed:?} to fail"
    );
    assert_temporarily_unavailable(response, "refresh grant").await;

    // A burst does not queue up behind the dead connection: every request fails fast.
    let started = Instant::now();
    let burst: Vec<_> = (0..16)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.token(PASSWORD_GRANT).await.status() })
        })
        .collect();
    for request in burst {
        assert_eq!(request.await.unwrap(), 503);
    }
    assert!(
        started.elapsed() < FAIL_FAST,
        "a burst of 16 took {:?}",
        started.elapsed()
    );

    redis.start();

    let after = wait_for_token(&auth).await;
    assert_ne!(after.access_token, before.access_token);
    // What Redis kept across the restart still holds: the refresh token from before works once.
    let refreshed = auth.token(&refresh_grant).await;
    assert_eq!(
        refreshed.status(),
        200,
        "the refresh token from before the outage"
    );
}

#[tokio::test]
async fn revoke_and_introspect_answer_503_while_redis_is_down_rfc7009_2_2_1() {
    const SECRET: &str = "rs-secret-0123456789-0123456789-xxx";
    let mut redis = private_redis();
    let namespace = redis.namespace("outage-revoke");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await;
    auth.add_introspecting_client("resource", SECRET).await;
    let tokens = auth.add_logged_in_user("alice", "alice-pw-1", "").await;
    let refresh_token = tokens.refresh_token.unwrap();

    redis.stop();

    // RFC 7009 §2.2.1: on 503 the client must assume the token still exists, and retry.
    for (token, hint) in [
        (refresh_token.as_str(), "refresh_token"),
        (tokens.access_token.as_str(), "access_token"),
    ] {
        let (response, elapsed) =
            timed(auth.revoke(&[("token", token), ("token_type_hint", hint)])).await;
        assert!(elapsed < FAIL_FAST, "revoking took {elapsed:?} to fail");
        assert_temporarily_unavailable(response, &format!("revoke {hint}")).await;
    }
    let (response, elapsed) = timed(
        auth.http
            .post(auth.url("/introspect"))
            .basic_auth("resource", Some(SECRET))
            .form(&[("token", tokens.access_token.as_str())])
            .send(),
    )
    .await;
    assert!(
        elapsed < FAIL_FAST,
        "introspection took {elapsed:?} to fail"
    );
    assert_temporarily_unavailable(response.unwrap(), "introspect").await;

    redis.start();

    system_tests::wait_ready(&auth.http, &auth.url("/readyz")).await;
    let revoked = auth
        .revoke(&[
            ("token", refresh_token.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .await;
    assert_eq!(
        revoked.status(),
        200,
        "the retry succeeds once Redis is back"
    );
    let refused = auth.refresh_grant(&refresh_token).await;
    assert_eq!(refused.status(), 400, "and the family is revoked");
}

#[tokio::test]
async fn readyz_false_livez_true_jwks_served_while_redis_is_down() {
    let mut redis = private_redis();
    let namespace = redis.namespace("outage-health");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await;
    auth.add_user("alice", "alice-pw-1", "").await;
    let jwks_before = auth.jwks().await;
    assert!(!jwks_before["keys"].as_array().unwrap().is_empty());

    redis.stop();

    let (ready, elapsed) = timed(auth.get("/readyz")).await;
    assert!(elapsed < FAIL_FAST, "/readyz took {elapsed:?}");
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "store unavailable");

    let live = auth.get("/livez").await;
    assert_eq!(
        live.status(),
        200,
        "the process is alive: restarting it would not bring Redis back"
    );

    let jwks = auth.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status(), 200);
    assert_eq!(
        jwks.json::<serde_json::Value>().await.unwrap(),
        jwks_before,
        "the same keys"
    );
    let metadata = auth.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(metadata.status(), 200, "metadata needs no store");

    redis.start();

    system_tests::wait_ready(&auth.http, &auth.url("/readyz")).await;
    // Once ready, the next request is served: no leftover failure from the dead connection.
    auth.password_grant("alice", "alice-pw-1").await;
}

#[tokio::test]
async fn resource_server_is_unaffected_by_a_redis_outage() {
    let mut redis = private_redis();
    let namespace = redis.namespace("outage-resource");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await;
    let api = TestResource::spawn(&auth).await;
    let token = auth
        .add_logged_in_user("alice", "alice-pw-1", "")
        .await
        .access_token;
    assert_eq!(api.get_me(&token).await.status(), 200);

    redis.stop();
    assert_eq!(
        auth.token(PASSWORD_GRANT).await.status(),
        503,
        "the auth-server feels the outage"
    );

    for _ in 0..5 {
        let me = api.get_me(&token).await;
        assert_eq!(
            me.status(),
            200,
            "tokens are verified locally, without the auth-server's store"
        );
        let body: serde_json::Value = me.json().await.unwrap();
        assert_eq!(body["username"], "alice");
    }
    let ready = api.http.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the resource server stays ready");
    let refused = api.get_me("not-a-token").await;
    assert_eq!(refused.status(), 401, "and still refuses what it should");
}

#[tokio::test]
async fn a_redis_restart_between_requests_costs_no_request() {
    let mut redis = private_redis();
    let namespace = redis.namespace("outage-restart");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await;
    let before = auth.add_logged_in_user("alice", "alice-pw-1", "").await;

    // Nobody asks while Redis is away, so the auth-server still holds the dead connection.
    redis.stop();
    redis.start();

    // The first reads fail on the dead connection and go again on a new one.
    auth.password_grant("alice", "alice-pw-1").await;
    let refreshed = auth
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", before.refresh_token.as_deref().unwrap()),
        ])
        .await;
    assert_eq!(refreshed.status(), 200);
}

#[tokio::test]
async fn a_hung_redis_gives_503_within_the_deadline_and_recovers_when_it_resumes() {
    let mut redis = private_redis();
    let namespace = redis.namespace("outage-hung");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await;
    auth.add_user("alice", "alice-pw-1", "").await;
    auth.password_grant("alice", "alice-pw-1").await;

    // Frozen: the connection stays open and nothing answers, as with a stalled host.
    redis.pause();

    let (response, elapsed) = timed(auth.token(PASSWORD_GRANT)).await;
    assert!(
        elapsed < FAIL_FAST,
        "the password grant took {elapsed:?} to fail"
    );
    assert_temporarily_unavailable(response, "password grant against a hung Redis").await;
    let (ready, elapsed) = timed(auth.get("/readyz")).await;
    assert!(elapsed < FAIL_FAST, "/readyz took {elapsed:?}");
    assert_eq!(ready.status(), 503);

    redis.resume();

    wait_for_token(&auth).await;
    system_tests::wait_ready(&auth.http, &auth.url("/readyz")).await;
}

#[tokio::test]
async fn auth_server_started_while_redis_is_down_exits_with_an_error_naming_the_store() {
    system_tests::init_logs();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let settings = auth_server::Settings {
        listen: listener.local_addr().unwrap(),
        store: auth_server::settings::StoreUrl(format!(
            "redis://:hunter2@127.0.0.1:{closed_port}/0?prefix=down:"
        )),
        keys_dir: dir.path().join("keys"),
        password_workers: 1,
        ..auth_server::Settings::default()
    };

    let started = Instant::now();
    let built = auth_server::Application::build_on(settings, listener).await;
    let elapsed = started.elapsed();

    let Err(err) = built else {
        panic!("the auth-server started without its store");
    };
    let message = format!("{err:#}");
    assert!(
        elapsed < Duration::from_secs(5),
        "giving up took {elapsed:?}"
    );
    assert!(
        message.contains(&format!("127.0.0.1:{closed_port}")),
        "{message}"
    );
    assert!(message.contains("unavailable"), "{message}");
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );
}
