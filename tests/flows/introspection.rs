//! RFC 7662 introspection for authenticated clients.

use serde_json::{json, Value};
use system_tests::TestAuth;
use test_kit::{unix_now, TestSigner};

const SECRET: &str = "rs-secret-0123456789-0123456789-xxx";

#[tokio::test]
async fn an_active_access_token_shows_the_rfc7662_2_2_fields() {
    let auth = TestAuth::spawn().await;
    auth.add_introspecting_client("resource", SECRET).await;
    let tokens = auth.add_logged_in_user("alice", "alice-pw-1", "read").await;
    let found = auth
        .introspect("resource", SECRET, &tokens.access_token)
        .await;
    assert_eq!(found["active"], true);
    assert_eq!(found["scope"], "read");
    assert_eq!(found["client_id"], "public");
    assert_eq!(found["username"], "alice");
    assert_eq!(found["sub"], "alice");
    assert_eq!(found["aud"], "api");
    assert_eq!(found["iss"], auth.url);
    assert_eq!(found["token_type"], "Bearer");
    assert!(found["exp"].as_u64().unwrap() > found["iat"].as_u64().unwrap());
    assert!(found["jti"].is_string());

    let refresh = auth
        .introspect("resource", SECRET, tokens.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(refresh["active"], true);
    assert_eq!(refresh["token_type"], "refresh_token");
}

#[tokio::test]
async fn expired_foreign_and_malformed_tokens_are_inactive_rfc7662_2_2() {
    // Long enough that the token cannot expire on its own between minting and the first
    // introspection, however busy the machine; the test moves the clock past it.
    let auth = TestAuth::spawn_with(|s| s.access_token_ttl = 60).await;
    let stranger = TestAuth::spawn().await;
    auth.add_introspecting_client("resource", SECRET).await;
    auth.add_user("alice", "alice-pw-1", "").await;
    let foreign = stranger
        .add_logged_in_user("alice", "alice-pw-1", "")
        .await
        .access_token;
    let inactive = serde_json::json!({"active": false});
    assert_eq!(
        auth.introspect("resource", SECRET, &foreign).await,
        inactive,
        "signed by another server"
    );
    assert_eq!(
        auth.introspect("resource", SECRET, "garbage").await,
        inactive
    );
    assert_eq!(auth.introspect("resource", SECRET, "").await, inactive);

    let short_lived = auth
        .password_grant("alice", "alice-pw-1")
        .await
        .access_token;
    assert_eq!(
        auth.introspect("resource", SECRET, &short_lived).await["active"],
        true
    );
    auth.clock.advance(std::time::Duration::from_secs(62));
    assert_eq!(
        auth.introspect("resource", SECRET, &short_lived).await,
        inactive,
        "expired"
    );
}

#[tokio::test]
async fn introspection_needs_an_authenticated_client_rfc7662_2_1() {
    let auth = TestAuth::spawn().await;
    let anonymous = auth
        .http
        .post(auth.url("/introspect"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(system_tests::challenge(&anonymous).starts_with("Basic"));
}

/// The auth-server judges its own tokens by the resource servers' rules: a header a resource
/// server refuses (`alg`, `typ`, `crit`; see `hostile_tokens.rs`) reads inactive here too,
/// even signed with the server's own key. The same forgery without the defect is active, so
/// each refusal is for its defect.
#[tokio::test]
async fn headers_a_resource_server_refuses_are_inactive_even_under_the_servers_key() {
    let auth = TestAuth::spawn().await;
    auth.add_introspecting_client("resource", SECRET).await;
    let kid = auth.active_kid().await;
    let key = TestSigner::from_pkcs8(&auth.private_signing_key(&kid).await);
    let now = unix_now();
    // A token of the default public client, as the server mints one.
    let claims = json!({
        "iss": auth.url, "sub": "public", "aud": "api", "exp": now + 300, "iat": now,
        "jti": format!("forged-{now}"), "client_id": "public", "scope": "",
    });
    let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
    let control = auth
        .introspect("resource", SECRET, &key.sign(&header, &claims))
        .await;
    assert_eq!(control["active"], true, "the control: {control}");

    for (member, value) in [
        ("alg", json!("RS384")),
        ("alg", json!("none")),
        ("typ", json!("JWT")),
        ("typ", Value::Null),
        ("crit", json!(["exp"])),
    ] {
        let mut attack = header.clone();
        attack[member] = value.clone();
        assert_eq!(
            auth.introspect("resource", SECRET, &key.sign(&attack, &claims))
                .await,
            json!({"active": false}),
            "{member}: {value}"
        );
    }
}
