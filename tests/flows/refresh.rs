//! Refresh tokens: RFC 6749 §6 with rotation and reuse detection (RFC 9700 §4.14).

use server_plumbing::wire::TokenResponse;
use system_tests::{error_of, TestAuth};

async fn login(auth: &TestAuth) -> TokenResponse {
    auth.add_logged_in_user("alice", "alice-pw-1", "read write")
        .await
}

#[tokio::test]
async fn refresh_rotates_the_token_rfc6749_6() {
    let auth = TestAuth::spawn().await;
    let first = login(&auth).await;
    let response = auth
        .refresh_grant(first.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second: TokenResponse = response.json().await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token, "rotated");
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(second.scope, "read write");
    let third = auth
        .refresh_grant(second.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(third.status(), 200);
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_hashes() {
    let auth = TestAuth::spawn().await;
    let tokens = login(&auth).await;
    let refresh_token = tokens.refresh_token.unwrap();
    let database = std::fs::read(auth.dir.path().join("auth.db")).unwrap();
    let wal = std::fs::read(auth.dir.path().join("auth.db-wal")).unwrap_or_default();
    for bytes in [&database, &wal] {
        assert!(!bytes
            .windows(refresh_token.len())
            .any(|w| w == refresh_token.as_bytes()));
    }
}

#[tokio::test]
async fn a_refresh_cannot_widen_the_scope_rfc6749_6() {
    let auth = TestAuth::spawn().await;
    let tokens = login(&auth).await;
    let refresh_token = tokens.refresh_token.unwrap();
    let widened = auth
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("scope", "read write admin"),
        ])
        .await;
    assert_eq!(widened.status(), 400);
    assert_eq!(error_of(widened).await, "invalid_scope");

    let narrowed = auth
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("scope", "read"),
        ])
        .await;
    assert_eq!(narrowed.status(), 200);
    let narrowed: TokenResponse = narrowed.json().await.unwrap();
    assert_eq!(narrowed.scope, "read");
    // The new refresh token keeps the original scope.
    let again: TokenResponse = auth
        .refresh_grant(narrowed.refresh_token.as_deref().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again.scope, "read write");
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_family_rfc9700_4_14_2() {
    let auth = TestAuth::spawn_with(|s| s.refresh_reuse_grace = 0).await;
    let first = login(&auth).await;
    let old = first.refresh_token.unwrap();
    let second: TokenResponse = auth.refresh_grant(&old).await.json().await.unwrap();
    let newest = second.refresh_token.unwrap();

    let reuse = auth.refresh_grant(&old).await;
    assert_eq!(reuse.status(), 400);
    assert_eq!(error_of(reuse).await, "invalid_grant");
    let newest_after = auth.refresh_grant(&newest).await;
    assert_eq!(
        newest_after.status(),
        400,
        "the newest member dies with the family"
    );
}

#[tokio::test]
async fn a_retry_within_the_grace_window_gets_the_same_pair_back() {
    let auth = TestAuth::spawn_with(|s| s.refresh_reuse_grace = 30).await;
    let first = login(&auth).await;
    let old = first.refresh_token.unwrap();
    let second: TokenResponse = auth.refresh_grant(&old).await.json().await.unwrap();
    let retried: TokenResponse = auth.refresh_grant(&old).await.json().await.unwrap();
    assert_eq!(
        retried, second,
        "the lost response is replayed, nothing new is minted"
    );
    // The family is alive: the replayed refresh token works.
    let third = auth
        .refresh_grant(second.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(third.status(), 200);
    // Once the successor has been used, a retry of the old token is reuse.
    let late = auth.refresh_grant(&old).await;
    assert_eq!(late.status(), 400);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_mint_exactly_one_pair() {
    let auth = TestAuth::spawn_with(|s| s.refresh_reuse_grace = 30).await;
    let first = login(&auth).await;
    let old = first.refresh_token.unwrap();
    let mut pairs = Vec::new();
    for (status, body) in TestAuth::refresh_at_once(&[&auth], &old, 24).await {
        assert_eq!(status, 200, "{body}");
        pairs.push(serde_json::from_value::<TokenResponse>(body).unwrap());
    }
    assert!(
        pairs.iter().all(|p| *p == pairs[0]),
        "one winner, the others get its pair"
    );
}

#[tokio::test]
async fn concurrent_refreshes_without_grace_have_one_winner_and_kill_the_family() {
    let auth = TestAuth::spawn_with(|s| s.refresh_reuse_grace = 0).await;
    let first = login(&auth).await;
    let old = first.refresh_token.unwrap();
    let answers = TestAuth::refresh_at_once(&[&auth], &old, 16).await;
    let mut winners = Vec::new();
    for (status, body) in answers {
        if status == 200 {
            winners.push(body);
        } else {
            assert_eq!(body["error"], "invalid_grant");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one new pair");
    let winner_refresh = winners[0]["refresh_token"].as_str().unwrap();
    assert_eq!(
        auth.refresh_grant(winner_refresh).await.status(),
        400,
        "reuse killed the family"
    );
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_its_client_and_expires() {
    let auth = TestAuth::spawn_with(|s| s.refresh_token_ttl = 2).await;
    let secret = "web-secret-0123456789-0123456789-xx";
    auth.add_client(
        "web",
        secret,
        &["password", "refresh_token"],
        "read write",
        &[],
    )
    .await;
    auth.add_user("alice", "alice-pw-1", "read write").await;
    let tokens: TokenResponse = auth
        .token_basic(
            "web",
            secret,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "alice-pw-1"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let refresh_token = tokens.refresh_token.unwrap();

    // Presented without the client's authentication: the caller has not proved it is the
    // client the token was issued to (RFC 6749 §6, §5.2 `invalid_client`).
    let as_public = auth.refresh_grant(&refresh_token).await;
    assert_eq!(
        as_public.status(),
        401,
        "issued to a confidential client, presented without its authentication"
    );
    assert_eq!(error_of(as_public).await, "invalid_client");
    let unauthenticated = auth
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh_token),
            ("client_id", "web"),
        ])
        .await;
    assert_eq!(
        unauthenticated.status(),
        401,
        "a confidential client must authenticate"
    );

    auth.clock.advance(std::time::Duration::from_secs(3));
    let expired = auth
        .token_basic(
            "web",
            secret,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    assert_eq!(expired.status(), 400);
    assert_eq!(error_of(expired).await, "invalid_grant");
}

#[tokio::test]
async fn a_disabled_user_cannot_refresh() {
    let auth = TestAuth::spawn().await;
    let tokens = login(&auth).await;
    auth.store
        .set_user_disabled("alice", true, None)
        .await
        .unwrap();
    let response = auth
        .refresh_grant(tokens.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn unknown_and_missing_refresh_tokens_are_refused() {
    let auth = TestAuth::spawn().await;
    let unknown = auth.refresh_grant("bm90LWEtcmVhbC10b2tlbg").await;
    assert_eq!(unknown.status(), 400);
    assert_eq!(error_of(unknown).await, "invalid_grant");
    let missing = auth.token(&[("grant_type", "refresh_token")]).await;
    assert_eq!(error_of(missing).await, "invalid_request");
}
