//! Brute-force protection on the password grant (RFC 6585 §4 `429` with `Retry-After`).

use system_tests::{metric_value, TestAuth};

async fn attempt(
    auth: &TestAuth,
    password: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut request = auth.http.post(auth.url("/token")).form(&[
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", password),
    ]);
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn failures_from_one_address_lead_to_429_before_any_hashing_rfc6585_4() {
    let auth = TestAuth::spawn_with(|s| {
        s.login_max_failures_per_address = 3;
        s.login_max_failures_per_user = 100;
    })
    .await;
    auth.add_user("alice", "alice-pw-1", "").await;
    for _ in 0..3 {
        assert_eq!(attempt(&auth, "wrong", None).await.status(), 400);
    }
    let throttled = attempt(&auth, "alice-pw-1", None).await;
    assert_eq!(throttled.status(), 429, "even the right password waits");
    let retry_after: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after));
    let body: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "an RFC 6749 §5.2 code");
    let metrics = auth.metrics().await;
    assert_eq!(metric_value(&metrics, "throttled_requests_total", &[]), 1.0);
}

#[tokio::test]
async fn a_flood_from_one_address_does_not_lock_the_user_out_elsewhere() {
    let auth = TestAuth::spawn_with(|s| {
        s.login_max_failures_per_address = 3;
        s.login_max_failures_per_user = 20;
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    auth.add_user("alice", "alice-pw-1", "").await;
    for _ in 0..5 {
        attempt(&auth, "wrong", Some("198.51.100.7")).await;
    }
    assert_eq!(
        attempt(&auth, "alice-pw-1", Some("198.51.100.7"))
            .await
            .status(),
        429
    );
    assert_eq!(
        attempt(&auth, "alice-pw-1", Some("203.0.113.5"))
            .await
            .status(),
        200,
        "another address still logs in"
    );
}

#[tokio::test]
async fn guessing_spread_over_many_addresses_hits_the_per_user_limit() {
    let auth = TestAuth::spawn_with(|s| {
        s.login_max_failures_per_address = 3;
        s.login_max_failures_per_user = 6;
        s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    auth.add_user("alice", "alice-pw-1", "").await;
    for n in 0..6 {
        let address = format!("192.0.2.{n}");
        assert_eq!(attempt(&auth, "wrong", Some(&address)).await.status(), 400);
    }
    assert_eq!(
        attempt(&auth, "alice-pw-1", Some("192.0.2.200"))
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let auth = TestAuth::spawn_with(|s| s.login_max_failures_per_address = 2).await;
    auth.add_user("alice", "alice-pw-1", "").await;
    attempt(&auth, "wrong", Some("198.51.100.1")).await;
    attempt(&auth, "wrong", Some("198.51.100.2")).await;
    let third = attempt(&auth, "alice-pw-1", Some("198.51.100.3")).await;
    assert_eq!(
        third.status(),
        429,
        "the socket address counts, not the header"
    );
}

#[tokio::test]
async fn a_good_login_forgives_the_address() {
    let auth = TestAuth::spawn_with(|s| s.login_max_failures_per_address = 3).await;
    auth.add_user("alice", "alice-pw-1", "").await;
    for _ in 0..2 {
        attempt(&auth, "wrong", None).await;
    }
    assert_eq!(attempt(&auth, "alice-pw-1", None).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(attempt(&auth, "wrong", None).await.status(), 400);
    }
    assert_eq!(attempt(&auth, "alice-pw-1", None).await.status(), 200);
}
