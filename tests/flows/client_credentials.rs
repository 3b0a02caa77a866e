//! Services get their own tokens: RFC 6749 §4.4 with §2.3.1 client authentication.

use base64::Engine;
use system_tests::{claims_of, error_of, TestAuth, TestResource};

const SECRET: &str = "orders-secret-0123456789-0123456789";

#[tokio::test]
async fn client_credentials_token_is_for_the_client_itself_rfc6749_4_4() {
    let auth = TestAuth::spawn().await;
    auth.add_client(
        "orders",
        SECRET,
        &["client_credentials"],
        "items:read items:write",
        &[],
    )
    .await;

    let response = auth
        .token_basic("orders", SECRET, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: server_plumbing::wire::TokenResponse = response.json().await.unwrap();
    assert!(
        tokens.refresh_token.is_none(),
        "no refresh token (RFC 6749 §4.4.3)"
    );
    assert_eq!(
        tokens.scope, "items:read items:write",
        "no scope asked: the client's scopes"
    );
    let claims = claims_of(&tokens.access_token);
    assert_eq!(claims["sub"], "orders");
    assert_eq!(claims["client_id"], "orders");
    assert_eq!(claims["aud"], "api");
    assert!(claims.get("preferred_username").is_none());
}

#[tokio::test]
async fn client_secret_post_works_and_both_methods_at_once_is_invalid_request_rfc6749_2_3() {
    let auth = TestAuth::spawn().await;
    auth.add_client("orders", SECRET, &["client_credentials"], "items:read", &[])
        .await;

    let post = auth
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "orders"),
            ("client_secret", SECRET),
        ])
        .await;
    assert_eq!(post.status(), 200);

    let both = auth
        .token_basic(
            "orders",
            SECRET,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "orders"),
                ("client_secret", SECRET),
            ],
        )
        .await;
    assert_eq!(both.status(), 400);
    assert_eq!(error_of(both).await, "invalid_request");
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded_rfc6749_2_3_1() {
    let auth = TestAuth::spawn().await;
    let odd_secret = "s p:a%c+e&=é-0123456789-0123456789";
    auth.add_client("odd:id", odd_secret, &["client_credentials"], "", &[])
        .await;
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        encode("odd:id"),
        encode(odd_secret)
    ));
    let response = auth
        .http
        .post(auth.url("/token"))
        .header("authorization", format!("Basic {credentials}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn failed_client_authentication_is_401_invalid_client_with_basic_challenge_rfc6749_5_2() {
    let auth = TestAuth::spawn().await;
    auth.add_client("orders", SECRET, &["client_credentials"], "", &[])
        .await;
    for (id, secret) in [
        ("orders", "wrong-secret-0123456789-0123456789"),
        ("nobody", SECRET),
    ] {
        let response = auth
            .token_basic(id, secret, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(response.status(), 401, "{id}");
        assert!(system_tests::challenge(&response).starts_with("Basic"));
        assert_eq!(error_of(response).await, "invalid_client");
    }
    let public = auth.token(&[("grant_type", "client_credentials")]).await;
    assert_eq!(
        public.status(),
        401,
        "client_credentials needs an authenticated client"
    );
}

#[tokio::test]
async fn a_client_may_use_only_its_grants_and_scopes() {
    let auth = TestAuth::spawn().await;
    auth.add_client("pw-only", SECRET, &["password"], "read", &[])
        .await;
    auth.add_client("reader", SECRET, &["client_credentials"], "read", &[])
        .await;

    let response = auth
        .token_basic("pw-only", SECRET, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_of(response).await, "unauthorized_client");

    let response = auth
        .token_basic(
            "reader",
            SECRET,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
            ],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_of(response).await, "invalid_scope");

    let response = auth
        .token_basic("reader", SECRET, &[("grant_type", "unknown")])
        .await;
    assert_eq!(error_of(response).await, "unsupported_grant_type");
}

#[tokio::test]
async fn audience_comes_from_the_clients_allowed_audiences_rfc8707() {
    let auth = TestAuth::spawn().await;
    auth.add_client(
        "multi",
        SECRET,
        &["client_credentials"],
        "",
        &["billing", "shipping"],
    )
    .await;

    let default = auth.client_credentials("multi", SECRET, "").await;
    assert_eq!(claims_of(&default.access_token)["aud"], "billing");

    let chosen = auth
        .token_basic(
            "multi",
            SECRET,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "shipping"),
            ],
        )
        .await;
    assert_eq!(chosen.status(), 200);
    let chosen: server_plumbing::wire::TokenResponse = chosen.json().await.unwrap();
    assert_eq!(claims_of(&chosen.access_token)["aud"], "shipping");

    let refused = auth
        .token_basic(
            "multi",
            SECRET,
            &[("grant_type", "client_credentials"), ("resource", "api")],
        )
        .await;
    assert_eq!(refused.status(), 400);
    assert_eq!(error_of(refused).await, "invalid_target");
}

#[tokio::test]
async fn resource_server_accepts_a_service_token_on_a_scoped_route_and_refuses_it_on_users_me() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;
    auth.add_client(
        "orders",
        SECRET,
        &["client_credentials"],
        "items:read other",
        &[],
    )
    .await;

    let token = auth
        .client_credentials("orders", SECRET, "items:read")
        .await
        .access_token;
    let items = api.get("/items", &token).await;
    assert_eq!(items.status(), 200);
    let body: serde_json::Value = items.json().await.unwrap();
    assert_eq!(body["requested_by"], "orders");

    let me = api.get_me(&token).await;
    assert_eq!(
        me.status(),
        403,
        "no user behind a client_credentials token"
    );
    assert!(system_tests::challenge(&me).contains(r#"error="insufficient_scope""#));

    let unscoped = auth
        .client_credentials("orders", SECRET, "other")
        .await
        .access_token;
    let refused = api.get("/items", &unscoped).await;
    assert_eq!(refused.status(), 403, "RFC 6750 §3.1 insufficient_scope");
    let challenge = system_tests::challenge(&refused);
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="items:read""#),
        "{challenge}"
    );
}
