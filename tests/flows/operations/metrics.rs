//! Both servers' Prometheus pages: what they count, by route, status, grant and outcome.

use base64::Engine;
use system_tests::{metric_sample, metric_value, scrape_metrics, TestAuth, TestResource};

use super::{CLIENT_SECRET, PASSWORD};

/// Counters end in `_total` (Prometheus naming conventions).
fn assert_counter_names(text: &str) {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                assert!(
                    name.ends_with("_total"),
                    "counter {name} should end in _total"
                );
            }
        }
    }
}

/// Every series is the server's own under its prefix, a `process_*` series, or a library's
/// under the library's prefix; the server says which version runs.
fn assert_prefixed(text: &str, own: &str, libraries: &[&str]) {
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        assert!(
            line.starts_with(own)
                || line.starts_with("process_")
                || libraries.iter().any(|prefix| line.starts_with(prefix)),
            "{line} has none of the prefixes"
        );
    }
    let build_info = format!("{own}build_info");
    assert_eq!(
        metric_value(text, &build_info, &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    // The process collector reads /proc: Linux only.
    if cfg!(target_os = "linux") {
        assert!(metric_value(text, "process_resident_memory_bytes", &[]) > 0.0);
        assert!(metric_value(text, "process_open_fds", &[]) > 0.0);
        assert!(metric_sample(text, "process_cpu_seconds_total", &[]).is_some());
    }
}

#[tokio::test]
async fn auth_server_metrics_count_requests_grants_failed_logins_and_password_hashing() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;
    auth.add_user("alice", PASSWORD, "read").await;
    auth.add_client("svc", CLIENT_SECRET, &["client_credentials"], "read", &[])
        .await;

    let tokens = auth.password_grant("alice", PASSWORD).await;
    auth.client_credentials("svc", CLIENT_SECRET, "read").await;
    let wrong = auth
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "not the password"),
        ])
        .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(api.get_me(&tokens.access_token).await.status(), 200);

    let text = scrape_metrics(&auth.http, &auth.url("/metrics")).await;
    assert_eq!(
        metric_value(
            &text,
            "auth_server_http_requests_total",
            &[("route", "/token"), ("method", "POST"), ("status", "200")]
        ),
        2.0
    );
    assert_eq!(
        metric_value(
            &text,
            "auth_server_http_requests_total",
            &[("route", "/token"), ("status", "400")]
        ),
        1.0
    );
    assert!(
        metric_value(
            &text,
            "auth_server_http_request_duration_seconds_bucket",
            &[("route", "/token"), ("le", "+Inf")]
        ) >= 3.0
    );
    assert!(
        metric_value(
            &text,
            "auth_server_http_request_duration_seconds_count",
            &[("route", "/token")]
        ) >= 3.0
    );
    assert_eq!(
        metric_value(
            &text,
            "auth_server_tokens_issued_total",
            &[("grant_type", "password")]
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "auth_server_tokens_issued_total",
            &[("grant_type", "client_credentials")]
        ),
        1.0
    );
    assert_eq!(
        metric_value(&text, "auth_server_login_failures_total", &[]),
        1.0
    );
    assert_eq!(
        metric_value(&text, "auth_server_throttled_requests_total", &[]),
        0.0
    );
    assert_eq!(
        metric_value(&text, "auth_server_password_hash_queue_depth", &[]),
        0.0,
        "nothing waits once all answered"
    );
    assert!(
        metric_value(&text, "auth_server_password_hash_wait_seconds_count", &[]) >= 2.0,
        "the good and the wrong password"
    );
    assert_eq!(
        metric_value(&text, "auth_server_store_errors_total", &[]),
        0.0
    );
    assert_counter_names(&text);
    assert_prefixed(&text, "auth_server_", &[]);
}

#[tokio::test]
async fn resource_server_metrics_count_verifications_by_outcome_and_key_fetches() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;
    auth.add_user("alice", PASSWORD, "read").await;
    let tokens = auth.password_grant("alice", PASSWORD).await;

    assert_eq!(api.get_me(&tokens.access_token).await.status(), 200);
    assert_eq!(api.get_me("not-a-jwt").await.status(), 401);
    let (signed, _) = tokens.access_token.rsplit_once('.').unwrap();
    let forged_signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 256]);
    assert_eq!(
        api.get_me(&format!("{signed}.{forged_signature}"))
            .await
            .status(),
        401
    );

    let text = scrape_metrics(&api.http, &api.url("/metrics")).await;
    assert!(
        metric_value(
            &text,
            "oauth2_jwt_verifier_verifications_total",
            &[("outcome", "ok")]
        ) >= 1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "oauth2_jwt_verifier_verifications_total",
            &[("outcome", "malformed")]
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "oauth2_jwt_verifier_verifications_total",
            &[("outcome", "bad_signature")]
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &text,
            "oauth2_jwt_verifier_verifications_total",
            &[("outcome", "expired")]
        ),
        0.0,
        "every outcome is exported"
    );
    assert!(metric_value(&text, "oauth2_jwt_verifier_jwks_fetches_total", &[]) >= 1.0);
    assert!(
        metric_sample(&text, "oauth2_jwt_verifier_jwks_fetch_failures_total", &[]).is_some(),
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "oauth2_jwt_verifier_jwks_keys", &[]),
        1.0
    );
    // The library's names carry its prefix, so that they cannot collide with a service's own.
    for unprefixed in [
        "jwks_keys",
        "token_verifications_total",
        "token_cache_hits_total",
    ] {
        assert!(
            metric_sample(&text, unprefixed, &[]).is_none(),
            "{unprefixed} in {text}"
        );
    }
    let age = metric_value(&text, "oauth2_jwt_verifier_jwks_age_seconds", &[]);
    assert!(
        (0.0..60.0).contains(&age),
        "keys fetched at start, {age} s ago"
    );
    assert!(
        metric_value(
            &text,
            "resource_server_http_requests_total",
            &[("route", "/users/me"), ("status", "401")]
        ) >= 2.0
    );
    assert_counter_names(&text);
    assert_prefixed(&text, "resource_server_", &["oauth2_jwt_verifier_"]);
}
