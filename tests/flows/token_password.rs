//! The password grant end to end: RFC 6749 §4.3 at `/token`, RFC 9068 tokens, `/users/me`.

use system_tests::{claims_of, header_of, TestAuth, TestResource};

#[tokio::test]
async fn password_grant_token_opens_users_me_rfc6749_4_3() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;
    auth.add_user("alice", "correct horse battery", "read write")
        .await;

    let response = auth
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse battery"),
            ("scope", ""),
        ])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "no-store",
        "RFC 6749 §5.1"
    );
    let tokens: server_plumbing::wire::TokenResponse = response.json().await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 900);
    assert_eq!(
        tokens.scope, "read write",
        "no scope asked: the user's scopes"
    );
    assert!(tokens.refresh_token.is_some());

    let me = api.get_me(&tokens.access_token).await;
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["full_name"], "alice full name");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["scope"], "read write");
}

#[tokio::test]
async fn access_token_is_an_rfc9068_jwt_with_every_claim() {
    let auth = TestAuth::spawn().await;
    let tokens = auth.add_logged_in_user("bob", "pw-bob-123", "read").await;

    let header = header_of(&tokens.access_token);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 §2.1");
    let jwks = auth.jwks().await;
    assert_eq!(header["kid"], jwks["keys"][0]["kid"]);

    let claims = claims_of(&tokens.access_token);
    assert_eq!(claims["iss"], auth.url);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["client_id"], "public");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["preferred_username"], "bob");
    assert_eq!(claims["name"], "bob full name");
    assert_eq!(claims["email"], "bob@example.com");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 900);
    assert!(claims["jti"].as_str().unwrap().len() >= 16);

    let other = auth.password_grant("bob", "pw-bob-123").await;
    assert_ne!(
        claims["jti"],
        claims_of(&other.access_token)["jti"],
        "jti is unique"
    );
}

#[tokio::test]
async fn wrong_password_unknown_user_and_disabled_user_answer_alike_rfc6749_5_2() {
    let auth = TestAuth::spawn().await;
    auth.add_user("carol", "carol-pw-1", "").await;
    auth.add_user("dave", "dave-pw-1", "").await;
    auth.store
        .set_user_disabled("dave", true, None)
        .await
        .unwrap();

    let mut bodies = Vec::new();
    for (username, password) in [
        ("carol", "wrong"),
        ("nobody", "whatever"),
        ("dave", "dave-pw-1"),
    ] {
        let response = auth
            .token(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
            ])
            .await;
        assert_eq!(response.status(), 400, "{username}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        bodies.push(response.text().await.unwrap());
    }
    assert!(
        bodies[0].contains(r#""error":"invalid_grant""#),
        "{}",
        bodies[0]
    );
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
}

#[tokio::test]
async fn requested_scope_must_be_within_the_users_scopes_rfc6749_3_3() {
    let auth = TestAuth::spawn().await;
    auth.add_user("erin", "erin-pw-1", "read write").await;

    let narrowed = auth
        .token(&[
            ("grant_type", "password"),
            ("username", "erin"),
            ("password", "erin-pw-1"),
            ("scope", "read"),
        ])
        .await;
    assert_eq!(narrowed.status(), 200);
    let narrowed: server_plumbing::wire::TokenResponse = narrowed.json().await.unwrap();
    assert_eq!(narrowed.scope, "read");
    assert_eq!(claims_of(&narrowed.access_token)["scope"], "read");

    let widened = auth
        .token(&[
            ("grant_type", "password"),
            ("username", "erin"),
            ("password", "erin-pw-1"),
            ("scope", "read admin"),
        ])
        .await;
    assert_eq!(widened.status(), 400);
    let body: serde_json::Value = widened.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn password_grant_without_client_can_be_turned_off() {
    let auth = TestAuth::spawn_with(|s| s.password_grant_without_client = false).await;
    auth.add_user("frank", "frank-pw-1", "").await;
    let response = auth
        .token(&[
            ("grant_type", "password"),
            ("username", "frank"),
            ("password", "frank-pw-1"),
        ])
        .await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));

    auth.add_client(
        "web",
        "web-secret-0123456789-0123456789-xx",
        &["password"],
        "",
        &[],
    )
    .await;
    let response = auth
        .token_basic(
            "web",
            "web-secret-0123456789-0123456789-xx",
            &[
                ("grant_type", "password"),
                ("username", "frank"),
                ("password", "frank-pw-1"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let tokens: server_plumbing::wire::TokenResponse = response.json().await.unwrap();
    assert_eq!(claims_of(&tokens.access_token)["client_id"], "web");
}

#[tokio::test]
async fn an_authenticating_clients_limits_apply_to_the_password_grant() {
    let auth = TestAuth::spawn().await;
    auth.add_user("gina", "gina-pw-1", "read write admin").await;
    let secret = "svc-secret-0123456789-0123456789-xx";
    auth.add_client("narrow", secret, &["password"], "read", &[])
        .await;
    auth.add_client("cc-only", secret, &["client_credentials"], "read", &[])
        .await;

    let form = [
        ("grant_type", "password"),
        ("username", "gina"),
        ("password", "gina-pw-1"),
    ];
    let response = auth.token_basic("narrow", secret, &form).await;
    assert_eq!(response.status(), 200);
    let tokens: server_plumbing::wire::TokenResponse = response.json().await.unwrap();
    assert_eq!(tokens.scope, "read", "user scopes meet client scopes");

    let response = auth.token_basic("cc-only", secret, &form).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");

    let response = auth
        .token(&[
            ("grant_type", "password"),
            ("username", "gina"),
            ("password", "gina-pw-1"),
            ("client_id", "narrow"),
        ])
        .await;
    assert_eq!(
        response.status(),
        401,
        "a registered client must authenticate"
    );
}

#[tokio::test]
async fn users_changed_by_the_store_are_seen_at_once() {
    let auth = TestAuth::spawn().await;
    auth.add_user("hank", "hank-pw-1", "").await;
    auth.password_grant("hank", "hank-pw-1").await;
    auth.store
        .set_user_disabled("hank", true, None)
        .await
        .unwrap();
    let response = auth
        .token(&[
            ("grant_type", "password"),
            ("username", "hank"),
            ("password", "hank-pw-1"),
        ])
        .await;
    assert_eq!(response.status(), 400);
    auth.store
        .set_user_disabled("hank", false, None)
        .await
        .unwrap();
    auth.password_grant("hank", "hank-pw-1").await;
}

#[tokio::test]
async fn imported_bcrypt_hash_logs_in_and_is_replaced_by_argon2id() {
    let auth = TestAuth::spawn().await;
    // The FastAPI tutorial's hash of "secret" (passlib bcrypt, $2b$, cost 12).
    let tutorial_hash = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";
    auth.add_user_with_hash("johndoe", tutorial_hash, |user| {
        user.full_name = Some("John Doe".into());
        user.email = Some("johndoe@example.com".into());
    })
    .await;

    let tokens = auth.password_grant("johndoe", "secret").await;
    assert_eq!(claims_of(&tokens.access_token)["name"], "John Doe");
    let stored = auth
        .store
        .user("johndoe")
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    auth.password_grant("johndoe", "secret").await;
}

#[tokio::test]
async fn a_login_flood_does_not_stall_other_endpoints() {
    let auth = std::sync::Arc::new(
        TestAuth::spawn_with(|s| {
            s.password_workers = 1;
            s.password_queue = 4;
            s.login_max_failures_per_address = 0;
            s.login_max_failures_per_user = 0;
        })
        .await,
    );
    auth.add_user("ivy", "ivy-pw-1", "").await;
    let flood: Vec<_> = (0..40)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move {
                auth.token(&[
                    ("grant_type", "password"),
                    ("username", "ivy"),
                    ("password", "wrong"),
                ])
                .await
                .status()
                .as_u16()
            })
        })
        .collect();
    // While the pool is saturated, the JWKS still answers.
    assert_eq!(auth.get("/.well-known/jwks.json").await.status(), 200);
    let mut statuses = Vec::new();
    for task in flood {
        statuses.push(task.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| *s == 400 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "a full queue answers 503 at once: {statuses:?}"
    );
}
