//! Several replicas on one Redis: two auth-servers share the store (one key prefix per test),
//! the keys directory (as replicas mount one secret) and the issuer URL, so that any replica
//! continues what another began, and a resource server trusts tokens from either.
//! `REDIS_URL` names the Redis when it is set; otherwise the tests start their own.

use server_plumbing::wire::TokenResponse;
use system_tests::{
    claims_of, error_of, retry_after, shared_redis, RedisNamespace, TestAuth, TestResource,
};

const SECRET: &str = "rs-secret-0123456789-0123456789-xxx";

/// Two replicas, `a` and `b`, on one store; `b` uses `a`'s keys and issuer.
struct Replicas {
    a: TestAuth,
    b: TestAuth,
    /// Dropped last: deletes the test's keys.
    _namespace: RedisNamespace,
}

async fn replicas(name: &str, adjust: impl Fn(&mut auth_server::Settings)) -> Replicas {
    let namespace = shared_redis(name);
    let a = TestAuth::spawn_on_redis(namespace.store_url(), &adjust).await;
    let b = a.spawn_replica(&adjust).await;
    Replicas {
        a,
        b,
        _namespace: namespace,
    }
}

#[tokio::test]
async fn token_from_one_replica_refreshes_at_the_other_rfc6749_6() {
    let replicas = replicas("refresh-across", |s| s.refresh_reuse_grace = 0).await;
    let (a, b) = (&replicas.a, &replicas.b);
    let first = a
        .add_logged_in_user("alice", "alice-pw-1", "read write")
        .await;
    let first_refresh = first.refresh_token.unwrap();

    let at_b = b.refresh_grant(&first_refresh).await;
    assert_eq!(at_b.status(), 200, "B knows the family A started");
    let second: TokenResponse = at_b.json().await.unwrap();
    assert_eq!(second.scope, "read write");
    let second_refresh = second.refresh_token.unwrap();
    assert_ne!(second_refresh, first_refresh, "rotated");

    let back_at_a = a.refresh_grant(&second_refresh).await;
    assert_eq!(back_at_a.status(), 200, "A knows the token B minted");
    let third: TokenResponse = back_at_a.json().await.unwrap();

    let replay = a.refresh_grant(&first_refresh).await;
    assert_eq!(replay.status(), 400, "A sees that B used it");
    assert_eq!(error_of(replay).await, "invalid_grant");
    let newest = b
        .refresh_grant(third.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(
        newest.status(),
        400,
        "reuse detected at A ended the family at B too (RFC 9700 §4.14.2)"
    );
}

#[tokio::test]
async fn a_retry_at_the_other_replica_within_the_grace_window_gets_the_same_pair() {
    let replicas = replicas("grace-across", |s| s.refresh_reuse_grace = 30).await;
    let (a, b) = (&replicas.a, &replicas.b);
    let first = a.add_logged_in_user("alice", "alice-pw-1", "read").await;
    let old = first.refresh_token.unwrap();

    let at_a: TokenResponse = a.refresh_grant(&old).await.json().await.unwrap();
    let retried_at_b = b.refresh_grant(&old).await;
    assert_eq!(retried_at_b.status(), 200);
    let retried_at_b: TokenResponse = retried_at_b.json().await.unwrap();
    assert_eq!(
        retried_at_b, at_a,
        "B replays the pair A sealed, nothing new is minted"
    );
}

#[tokio::test]
async fn family_revoked_at_one_replica_is_inactive_at_the_other_rfc7009_2_1_rfc7662_2_2() {
    let replicas = replicas("revoke-across", |_| {}).await;
    let (a, b) = (&replicas.a, &replicas.b);
    a.add_introspecting_client("resource", SECRET).await;
    let tokens = a.add_logged_in_user("bob", "bob-pw-1", "read").await;
    let refresh_token = tokens.refresh_token.unwrap();
    assert_eq!(
        a.introspect("resource", SECRET, &refresh_token).await["active"],
        true
    );
    assert_eq!(
        b.introspect("resource", SECRET, &refresh_token).await["active"],
        true,
        "B sees A's token"
    );

    assert_eq!(
        b.revoke(&[
            ("token", &refresh_token),
            ("token_type_hint", "refresh_token")
        ])
        .await
        .status(),
        200
    );
    let inactive = serde_json::json!({"active": false});
    assert_eq!(
        a.introspect("resource", SECRET, &refresh_token).await,
        inactive,
        "revoked at B, inactive at A"
    );
    let refused = a.refresh_grant(&refresh_token).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(error_of(refused).await, "invalid_grant");

    assert_eq!(
        a.introspect("resource", SECRET, &tokens.access_token).await["active"],
        true
    );
    assert_eq!(
        b.revoke(&[
            ("token", &tokens.access_token),
            ("token_type_hint", "access_token")
        ])
        .await
        .status(),
        200
    );
    assert_eq!(
        a.introspect("resource", SECRET, &tokens.access_token).await,
        inactive,
        "an access token revoked at B is inactive at A"
    );
}

#[tokio::test]
async fn throttle_counted_at_one_replica_holds_at_the_other_rfc6585_4() {
    let replicas = replicas("throttle-across", |s| {
        s.login_max_failures_per_address = 3;
        s.login_max_failures_per_user = 100;
    })
    .await;
    let (a, b) = (&replicas.a, &replicas.b);
    a.add_user("alice", "alice-pw-1", "").await;
    let wrong = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "wrong"),
    ];
    for _ in 0..3 {
        let response = a.token(&wrong).await;
        assert_eq!(response.status(), 400);
        assert_eq!(error_of(response).await, "invalid_grant");
    }

    let at_b = b
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-pw-1"),
        ])
        .await;
    assert_eq!(
        at_b.status(),
        429,
        "the failures counted at A hold at B, even for the right password"
    );
    let retry_after = retry_after(&at_b);
    assert!(
        (1..=900).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_eq!(error_of(at_b).await, "invalid_grant");
}

#[tokio::test]
async fn replicas_publish_the_same_jwks_and_the_resource_server_accepts_both_rfc7517_5() {
    let replicas = replicas("jwks-across", |_| {}).await;
    let (a, b) = (&replicas.a, &replicas.b);
    let jwks = a.jwks().await;
    assert!(!jwks["keys"].as_array().unwrap().is_empty());
    assert_eq!(b.jwks().await, jwks, "one keys directory, one key set");

    let api = TestResource::spawn(a).await;
    a.add_user("alice", "alice-pw-1", "").await;
    let issuer = a.settings.issuer_str().to_owned();
    for (name, replica) in [("A", a), ("B", b)] {
        let token = replica
            .password_grant("alice", "alice-pw-1")
            .await
            .access_token;
        assert_eq!(
            claims_of(&token)["iss"],
            issuer.as_str(),
            "{name} signs as the one issuer"
        );
        let me = api.get_me(&token).await;
        assert_eq!(
            me.status(),
            200,
            "the resource server accepts a token from {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_spread_over_both_replicas_have_exactly_one_winner_rfc9700_4_14_2() {
    let replicas = replicas("race-across", |s| s.refresh_reuse_grace = 0).await;
    let first = replicas
        .a
        .add_logged_in_user("alice", "alice-pw-1", "read")
        .await;
    let old = first.refresh_token.unwrap();

    let answers = TestAuth::refresh_at_once(&[&replicas.a, &replicas.b], &old, 16).await;
    let mut winners = Vec::new();
    for (status, body) in answers {
        if status == 200 {
            winners.push(body);
        } else {
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"], "invalid_grant");
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one new pair across both replicas"
    );

    let winner_refresh = winners[0]["refresh_token"].as_str().unwrap();
    for replica in [&replicas.a, &replicas.b] {
        assert_eq!(
            replica.refresh_grant(winner_refresh).await.status(),
            400,
            "the losers' reuse ended the family"
        );
    }
}
