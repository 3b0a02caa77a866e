//! RFC 7009 revocation of refresh and access tokens.

use server_plumbing::wire::TokenResponse;
use system_tests::TestAuth;

const SECRET: &str = "rs-secret-0123456789-0123456789-xxx";

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_family_rfc7009_2_1() {
    let auth = TestAuth::spawn().await;
    let first = auth.add_logged_in_user("alice", "alice-pw-1", "").await;
    let second: TokenResponse = auth
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", first.refresh_token.as_deref().unwrap()),
        ])
        .await
        .json()
        .await
        .unwrap();
    let response = auth
        .revoke(&[
            ("token", first.refresh_token.as_deref().unwrap()),
            ("token_type_hint", "refresh_token"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    let after = auth
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", second.refresh_token.as_deref().unwrap()),
        ])
        .await;
    assert_eq!(
        after.status(),
        400,
        "the newest member went with the family"
    );
}

#[tokio::test]
async fn a_revoked_access_token_is_inactive_at_introspection_rfc7009_2() {
    let auth = TestAuth::spawn().await;
    auth.add_introspecting_client("resource", SECRET).await;
    let tokens = auth.add_logged_in_user("bob", "bob-pw-1", "").await;
    assert_eq!(
        auth.introspect("resource", SECRET, &tokens.access_token)
            .await["active"],
        true
    );

    let response = auth
        .revoke(&[
            ("token", &tokens.access_token),
            ("token_type_hint", "access_token"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        auth.introspect("resource", SECRET, &tokens.access_token)
            .await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn unknown_tokens_are_revoked_with_200_rfc7009_2_2() {
    let auth = TestAuth::spawn().await;
    for token in ["not-a-token", "a.b.c", ""] {
        let response = auth.revoke(&[("token", token)]).await;
        assert_eq!(response.status(), 200, "{token:?}");
    }
    let missing = auth.revoke(&[]).await;
    assert_eq!(missing.status(), 400, "the token parameter is required");
}

#[tokio::test]
async fn a_confidential_clients_tokens_need_its_authentication_to_revoke() {
    let auth = TestAuth::spawn().await;
    auth.add_client("svc", SECRET, &["client_credentials"], "", &[])
        .await;
    let token = auth
        .client_credentials("svc", SECRET, "")
        .await
        .access_token;

    let anonymous = auth.revoke(&[("token", &token)]).await;
    assert_eq!(
        anonymous.status(),
        400,
        "a public caller may not revoke another client's token"
    );
    let wrong = auth
        .http
        .post(auth.url("/revoke"))
        .basic_auth("svc", Some("wrong"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = auth
        .http
        .post(auth.url("/revoke"))
        .basic_auth("svc", Some(SECRET))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
}
