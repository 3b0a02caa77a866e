//! Brute-force protection on the password grant (RFC 6585 §4 `429` with `Retry-After`): how
//! many checks a burst gets, on each store and across replicas, and which client address a
//! failure counts against.

use std::sync::Arc;

use system_tests::{metric_value, retry_after, shared_redis, TestAuth};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// An auth-server with settings adjusted by `adjust` and the user alice (`alice-pw-1`).
async fn alice_at(adjust: impl FnOnce(&mut auth_server::Settings)) -> TestAuth {
    let auth = TestAuth::spawn_with(adjust).await;
    auth.add_user("alice", "alice-pw-1", "").await;
    auth
}

/// Login limits: `per_address` failures from one client address, `per_user` for one user.
fn limits(per_address: u64, per_user: u64) -> impl Fn(&mut auth_server::Settings) + Copy {
    move |settings| {
        settings.login_max_failures_per_address = per_address;
        settings.login_max_failures_per_user = per_user;
    }
}

/// [`limits`] behind a trusted proxy on 127.0.0.1, so that `X-Forwarded-For` names the client.
fn behind_a_proxy(per_address: u64, per_user: u64) -> impl Fn(&mut auth_server::Settings) + Copy {
    move |settings| {
        limits(per_address, per_user)(settings);
        settings.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    }
}

#[tokio::test]
async fn failures_from_one_address_lead_to_429_before_any_hashing_rfc6585_4() {
    let auth = alice_at(limits(3, 100)).await;
    for _ in 0..3 {
        assert_eq!(attempt(&auth, "wrong", None).await.status(), 400);
    }
    let throttled = attempt(&auth, "alice-pw-1", None).await;
    assert_eq!(throttled.status(), 429, "even the right password waits");
    let retry_after = retry_after(&throttled);
    assert!((1..=900).contains(&retry_after));
    let body: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "an RFC 6749 §5.2 code");
    let metrics = auth.metrics().await;
    assert_eq!(
        metric_value(&metrics, "auth_server_throttled_requests_total", &[]),
        1.0
    );
}

#[tokio::test]
async fn a_flood_from_one_address_does_not_lock_the_user_out_elsewhere() {
    let auth = alice_at(behind_a_proxy(3, 20)).await;
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
    let auth = alice_at(behind_a_proxy(3, 6)).await;
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
    let auth = alice_at(|s| s.login_max_failures_per_address = 2).await;
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
    let auth = alice_at(|s| s.login_max_failures_per_address = 3).await;
    for _ in 0..2 {
        attempt(&auth, "wrong", None).await;
    }
    assert_eq!(attempt(&auth, "alice-pw-1", None).await.status(), 200);
    for _ in 0..2 {
        assert_eq!(attempt(&auth, "wrong", None).await.status(), 400);
    }
    assert_eq!(attempt(&auth, "alice-pw-1", None).await.status(), 200);
}

/// Wrong passwords sent at once from one address.
const BURST: usize = 48;
/// The per-address limit in the burst tests.
const BURST_LIMIT: u64 = 5;

fn burst_limits(settings: &mut auth_server::Settings) {
    limits(BURST_LIMIT, 1_000)(settings);
}

/// Sends [`BURST`] wrong passwords for alice at once, from this test's one address, spread
/// over `servers` in turn, and checks that at most the per-address limit were checked (`400`)
/// and the rest refused before any hashing (`429`, `Retry-After`, `invalid_grant`).
async fn assert_a_burst_gets_at_most_the_limit_of_checks(servers: &[&TestAuth]) {
    let checks_before = password_checks(servers).await;
    let start = Arc::new(tokio::sync::Barrier::new(BURST));
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..BURST {
        let server = servers[n % servers.len()];
        let (http, url, start) = (server.http.clone(), server.url("/token"), start.clone());
        requests.spawn(async move {
            start.wait().await;
            let response = http
                .post(url)
                .form(&[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", "wrong"),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().parse::<u64>().unwrap());
            let body: serde_json::Value = response.json().await.unwrap();
            (
                status,
                retry_after,
                body["error"].as_str().unwrap().to_owned(),
            )
        });
    }
    let answers = requests.join_all().await;

    let checked = answers.iter().filter(|(status, ..)| *status == 400).count();
    let throttled: Vec<_> = answers
        .iter()
        .filter(|(status, ..)| *status == 429)
        .collect();
    assert_eq!(
        checked + throttled.len(),
        BURST,
        "every answer is 400 or 429: {answers:?}"
    );
    assert_eq!(
        checked,
        usize::try_from(BURST_LIMIT).unwrap(),
        "the limit of checks, not one more, and no fewer (nothing else was counted): {answers:?}"
    );
    for (_, retry_after, error) in &throttled {
        assert!(
            retry_after.is_some_and(|seconds| (1..=900).contains(&seconds)),
            "Retry-After {retry_after:?}"
        );
        assert_eq!(error, "invalid_grant");
    }
    for (status, _, error) in &answers {
        if *status == 400 {
            assert_eq!(error, "invalid_grant");
        }
    }
    assert_eq!(
        password_checks(servers).await - checks_before,
        BURST_LIMIT,
        "only the checked requests reached a password worker"
    );
}

/// Password checks the servers' workers ran, from their `/metrics`.
async fn password_checks(servers: &[&TestAuth]) -> u64 {
    let mut total = 0.0;
    for server in servers {
        total += metric_value(
            &server.metrics().await,
            "auth_server_password_hash_wait_seconds_count",
            &[],
        );
    }
    total as u64
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_gets_at_most_the_limit_of_checks_embedded_rfc6585_4() {
    let auth = alice_at(burst_limits).await;
    assert_a_burst_gets_at_most_the_limit_of_checks(&[&auth]).await;
    assert_eq!(
        attempt(&auth, "alice-pw-1", None).await.status(),
        429,
        "the address stays throttled after the burst"
    );
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_gets_at_most_the_limit_of_checks_redis_rfc6585_4() {
    let namespace = shared_redis("throttle-burst");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), burst_limits).await;
    auth.add_user("alice", "alice-pw-1", "").await;
    assert_a_burst_gets_at_most_the_limit_of_checks(&[&auth]).await;
}

#[tokio::test]
async fn a_burst_spread_over_two_replicas_gets_at_most_the_limit_of_checks_rfc6585_4() {
    let namespace = shared_redis("throttle-burst-replicas");
    let a = TestAuth::spawn_on_redis(namespace.store_url(), burst_limits).await;
    let b = a.spawn_replica(burst_limits).await;
    a.add_user("alice", "alice-pw-1", "").await;
    assert_a_burst_gets_at_most_the_limit_of_checks(&[&a, &b]).await;
}

/// `POST /token` for alice over a raw connection, with one `X-Forwarded-For` field line per
/// entry of `forwarded_for`; returns the status.
async fn attempt_with_forwarded_lines(
    auth: &TestAuth,
    password: &str,
    forwarded_for: &[&str],
) -> u16 {
    let body = format!("grant_type=password&username=alice&password={password}");
    let mut head = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        auth.addr,
        body.len()
    );
    for line in forwarded_for {
        head.push_str(&format!("X-Forwarded-For: {line}\r\n"));
    }
    let mut stream = tokio::net::TcpStream::connect(auth.addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\n{body}").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    status_line
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// RFC 9110 §5.3: repeated field lines are one list, in order. The nearest proxy appends its
/// own line, so the client is the rightmost untrusted entry of the last line, not the first.
#[tokio::test]
async fn every_forwarded_for_line_is_read_and_the_rightmost_untrusted_address_counts() {
    let auth = alice_at(behind_a_proxy(2, 100)).await;
    for _ in 0..2 {
        let status =
            attempt_with_forwarded_lines(&auth, "wrong", &["198.51.100.7", "203.0.113.5"]).await;
        assert_eq!(status, 400);
    }
    assert_eq!(
        attempt_with_forwarded_lines(&auth, "alice-pw-1", &["203.0.113.5"]).await,
        429,
        "the failures counted against the address of the last line"
    );
    assert_eq!(
        attempt_with_forwarded_lines(&auth, "alice-pw-1", &["198.51.100.7"]).await,
        200,
        "not against the first line's, which the client wrote"
    );
}

#[tokio::test]
async fn ipv6_clients_are_counted_per_64() {
    let auth = alice_at(behind_a_proxy(2, 100)).await;
    for address in ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"] {
        assert_eq!(attempt(&auth, "wrong", Some(address)).await.status(), 400);
    }
    assert_eq!(
        attempt(&auth, "alice-pw-1", Some("2001:db8:1:2::abcd"))
            .await
            .status(),
        429,
        "one /64, one counter"
    );
    assert_eq!(
        attempt(&auth, "alice-pw-1", Some("2001:db8:1:3::1"))
            .await
            .status(),
        200,
        "the next /64 is another client"
    );
}

#[tokio::test]
async fn an_ipv4_mapped_address_counts_as_the_ipv4_address() {
    let auth = alice_at(behind_a_proxy(2, 100)).await;
    for _ in 0..2 {
        assert_eq!(
            attempt(&auth, "wrong", Some("::ffff:198.51.100.7"))
                .await
                .status(),
            400
        );
    }
    assert_eq!(
        attempt(&auth, "alice-pw-1", Some("198.51.100.7"))
            .await
            .status(),
        429
    );
    assert_eq!(
        attempt(&auth, "alice-pw-1", Some("198.51.100.8"))
            .await
            .status(),
        200
    );
}
