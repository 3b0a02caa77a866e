//! Key revocation fails closed. An auth-server replica that cannot read the signing-key states
//! may go on signing with a key revoked meanwhile, so after three sync intervals without a read
//! it answers 503 on `/readyz` (the load balancer drains it) and says so in
//! `auth_server_signing_keys_stale`.
//! A resource server whose key set has been stale for longer than `RS_JWKS_MAX_STALE` refuses
//! tokens with 503 instead of trusting keys that may have been revoked, and `/readyz` says so.

use std::time::{Duration, Instant};

use auth_server::keys::encryption::KeyEncryptionKey;
use auth_server::keys::lifecycle::KeyLifecycle;
use system_tests::{metric_value, private_redis, shared_redis, TestAuth, TestResource};

/// `AUTH_KEY_SYNC_INTERVAL` of these tests: replicas go unready after three of them.
const SYNC: u64 = 1;

/// Longest any state change here may take to show, on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `/readyz` until it answers `status`; returns its body's `status` text.
async fn wait_for_readyz(http: &reqwest::Client, url: &str, status: u16) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let response = http.get(url).send().await.unwrap();
        if response.status() == status {
            let body: serde_json::Value = response.json().await.unwrap();
            return body["status"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "{url} never answered {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The store's active key is revoked by a process with another key-encryption key, so that the
/// new active key is one this replica cannot open: every read of the key states fails while the
/// store itself answers. Then a process with the right key-encryption key repairs it.
async fn replica_that_cannot_read_the_keys_is_drained_then_recovers(auth: TestAuth) {
    let ready = auth.url("/readyz");
    assert_eq!(
        metric_value(&auth.metrics().await, "auth_server_signing_keys_stale", &[]),
        0.0
    );
    let revoked = auth.active_kid().await;
    let stranger = KeyLifecycle::new(
        auth.store.clone(),
        KeyEncryptionKey::from_bytes(&[0x5a; 32]).unwrap(),
        auth.settings.key_schedule(),
    );
    stranger
        .revoke(&revoked, auth_server::oauth::clock::unix_now())
        .await
        .unwrap();
    let unreadable = auth.active_kid().await;
    assert_ne!(unreadable, revoked);

    let first = auth.http.get(&ready).send().await.unwrap();
    assert_eq!(
        first.status(),
        200,
        "the store answers: one failed read is not yet an outage"
    );
    let status = wait_for_readyz(&auth.http, &ready, 503).await;
    assert!(
        status.contains("signing-key states not read"),
        "/readyz says why: {status}"
    );
    let metrics = auth.metrics().await;
    assert_eq!(
        metric_value(&metrics, "auth_server_signing_keys_stale", &[]),
        1.0
    );
    assert!(metric_value(&metrics, "auth_server_signing_key_sync_failures_total", &[]) >= 2.0);
    let jwks = auth.jwks().await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|key| key["kid"] == revoked),
        "why it must be drained: it still publishes (and signs with) the revoked key"
    );
    let live = auth.get("/livez").await;
    assert_eq!(live.status(), 200, "drained, not restarted");

    auth.key_lifecycle()
        .revoke(&unreadable, auth_server::oauth::clock::unix_now())
        .await
        .unwrap();
    assert_eq!(wait_for_readyz(&auth.http, &ready, 200).await, "ok");
    assert_eq!(
        metric_value(&auth.metrics().await, "auth_server_signing_keys_stale", &[]),
        0.0
    );
    let jwks = auth.jwks().await;
    assert!(
        !jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|key| key["kid"] == revoked),
        "once it reads the states again, the revoked key is gone"
    );
}

#[tokio::test]
async fn a_replica_that_cannot_read_the_key_states_is_unready_after_three_syncs_sqlite() {
    let auth = TestAuth::spawn_with(|settings| settings.key_sync_interval = SYNC).await;
    replica_that_cannot_read_the_keys_is_drained_then_recovers(auth).await;
}

#[tokio::test]
async fn a_replica_that_cannot_read_the_key_states_is_unready_after_three_syncs_redis() {
    let namespace = shared_redis("fails-closed");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), |settings| {
        settings.key_sync_interval = SYNC;
    })
    .await;
    replica_that_cannot_read_the_keys_is_drained_then_recovers(auth).await;
}

#[tokio::test]
async fn a_paused_redis_makes_readyz_name_the_unread_key_states_after_three_syncs() {
    let mut redis = private_redis();
    let namespace = redis.namespace("fails-closed-paused");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), |settings| {
        settings.key_sync_interval = SYNC;
    })
    .await;
    let ready = auth.url("/readyz");

    redis.pause();
    let paused_at = Instant::now();
    let status = loop {
        let status = wait_for_readyz(&auth.http, &ready, 503).await;
        if status.contains("signing-key states not read") {
            break status;
        }
        assert_eq!(status, "store unavailable", "before three sync intervals");
        assert!(paused_at.elapsed() < DEADLINE, "never named the key states");
    };
    assert!(
        paused_at.elapsed() >= Duration::from_secs(2 * SYNC),
        "not before the key states were due three times: {status}"
    );
    assert_eq!(
        metric_value(&auth.metrics().await, "auth_server_signing_keys_stale", &[]),
        1.0
    );

    redis.resume();
    assert_eq!(wait_for_readyz(&auth.http, &ready, 200).await, "ok");
}

#[tokio::test]
async fn a_resource_server_refuses_tokens_once_its_keys_are_stale_past_rs_jwks_max_stale() {
    const MAX_STALE: u64 = 3;
    let mut auth = TestAuth::spawn().await;
    let api = TestResource::spawn_configured(&auth.url, true, |settings| {
        // Fresh for a second, then stale: usable for MAX_STALE seconds more.
        settings.jwks_min_refresh = 1;
        settings.jwks_max_refresh = 1;
        settings.jwks_max_stale = MAX_STALE;
    })
    .await;
    let cached = auth
        .add_logged_in_user("alice", "alice-pw-1", "")
        .await
        .access_token;
    let fresh = auth
        .password_grant("alice", "alice-pw-1")
        .await
        .access_token;
    assert_eq!(api.get_me(&cached).await.status(), 200);

    auth.stop().await;

    // Stale (older than its freshness) but within the bound: tokens still verify.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let metrics = api.metrics().await;
        let age = metric_value(&metrics, "oauth2_jwt_verifier_jwks_age_seconds", &[]);
        if age > metric_value(&metrics, "oauth2_jwt_verifier_jwks_fresh_for_seconds", &[]) {
            assert!(age < (1 + MAX_STALE) as f64, "checked too late: {age}");
            break;
        }
        assert!(Instant::now() < deadline, "the keys never went stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api.get_me(&fresh).await.status(), 200, "within the bound");
    let ready = api.http.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "within the bound");

    // Past it: every token is refused, as a 503 that is not the client's fault.
    let deadline = Instant::now() + DEADLINE;
    let refused = loop {
        let response = api.get_me(&cached).await;
        if response.status() != 200 {
            break response;
        }
        assert!(
            Instant::now() < deadline,
            "stale keys were trusted for ever"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        refused.status(),
        503,
        "a cached verdict is not trusted either"
    );
    assert!(refused.headers().contains_key("retry-after"));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert_eq!(api.get_me(&fresh).await.status(), 503);

    let ready = api.http.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let status: serde_json::Value = ready.json().await.unwrap();
    let status = status["status"].as_str().unwrap();
    assert!(
        status.contains("stale") && status.contains("RS_JWKS_MAX_STALE"),
        "/readyz says why: {status}"
    );
    let metrics = api.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "oauth2_jwt_verifier_verifications_total",
            &[("outcome", "keys_unavailable")]
        ) >= 2.0
    );
}
