//! Client ids and usernames: every client_id names a registered client, names never collide,
//! introspection speaks only of the caller's tokens, and impossible ids never reach the store.

use super::*;

async fn every_client_id_names_a_registered_client(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    deployment.add_user("alice", "alice-pw-1", "read").await;
    deployment
        .add_web(WEB_SECRET, &["--grant", "password"])
        .await;

    let unregistered = deployment
        .login_as(As::Named("made-up"), "alice", "alice-pw-1")
        .await;
    assert_eq!(unregistered.status(), 401);
    assert!(system_tests::challenge(&unregistered).starts_with("Basic"));
    let unregistered: Value = unregistered.json().await.unwrap();
    let unauthenticated: Value = deployment
        .login_as(As::Named("web"), "alice", "alice-pw-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unregistered["error"], "invalid_client");
    assert_eq!(
        unregistered, unauthenticated,
        "an unknown id and a confidential client without its secret answer alike (RFC 6749 §5.2)"
    );

    let added = deployment
        .ok(&["client", "add", "spa", "--public", "--scope", "read"], "")
        .await;
    assert!(!added.contains("client_secret"), "{added}");
    let listed = deployment.ok(&["client", "list"], "").await;
    assert!(
        listed.contains("spa\tgrants=password,refresh_token\tscope=read\taudience=\tpublic"),
        "{listed}"
    );
    let spa = deployment
        .login(As::Named("spa"), "alice", "alice-pw-1")
        .await;
    assert_eq!(claims_of(&spa.access_token)["client_id"], "spa");
    assert_eq!(
        deployment
            .refresh(As::Named("spa"), refresh_token_of(&spa))
            .await
            .status(),
        200
    );
    let refused = deployment
        .fails(
            &[
                "client",
                "add",
                "cli-tool",
                "--public",
                "--grant",
                "client_credentials",
            ],
            "",
        )
        .await;
    assert!(refused.contains("public client"), "{refused}");

    // A public client may also name itself in Basic with an empty secret (RFC 6749 §2.3.1).
    let basic = deployment
        .login(As::Basic("spa", ""), "alice", "alice-pw-1")
        .await;
    assert_eq!(claims_of(&basic.access_token)["client_id"], "spa");

    let default = deployment.login(As::NoClient, "alice", "alice-pw-1").await;
    assert_eq!(claims_of(&default.access_token)["client_id"], "public");
    // Swagger UI's empty Basic credentials (`Basic Og==`, an empty id and secret) name no
    // client either.
    let swagger = deployment
        .login(As::Basic("", ""), "alice", "alice-pw-1")
        .await;
    assert_eq!(claims_of(&swagger.access_token)["client_id"], "public");
}

async fn without_the_default_public_client_a_request_must_name_one(backend: Backend) {
    let deployment = deploy(backend, |settings| {
        settings.password_grant_without_client = false
    })
    .await;
    deployment
        .ok(&["user", "add", "alice", "--password-stdin"], "alice-pw-1")
        .await;
    assert_eq!(
        status_and_error(
            deployment
                .login_as(As::NoClient, "alice", "alice-pw-1")
                .await
        )
        .await,
        (401, "invalid_client".to_owned())
    );
    assert_eq!(
        deployment
            .login_as(As::Named("public"), "alice", "alice-pw-1")
            .await
            .status(),
        401
    );
    deployment
        .ok(&["client", "add", "spa", "--public"], "")
        .await;
    let spa = deployment
        .login(As::Named("spa"), "alice", "alice-pw-1")
        .await;
    assert_eq!(claims_of(&spa.access_token)["client_id"], "spa");
}

// ---------------------------------------------------------------------------------------------
// 5. Names cannot collide

async fn usernames_and_client_ids_never_collide_rfc9068_5(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    deployment
        .ok(&["user", "add", "alice", "--password-stdin"], "alice-pw-1")
        .await;
    let client = deployment
        .fails(&["client", "add", "alice", "--secret-stdin"], WEB_SECRET)
        .await;
    assert!(client.contains("username"), "{client}");
    deployment
        .ok(&["client", "add", "svc", "--secret-stdin"], WEB_SECRET)
        .await;
    let user = deployment
        .fails(&["user", "add", "svc", "--password-stdin"], "svc-pw-1")
        .await;
    assert!(user.contains("client id"), "{user}");
    let reserved = deployment
        .fails(&["client", "add", "public", "--public"], "")
        .await;
    assert!(reserved.contains("default public client"), "{reserved}");
    let reserved = deployment
        .fails(
            &["user", "add", "public", "--password-stdin"],
            "public-pw-1",
        )
        .await;
    assert!(reserved.contains("default public client"), "{reserved}");

    let tokens: TokenResponse = deployment
        .client_credentials("svc", WEB_SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(claims_of(&tokens.access_token)["sub"], "svc");
    // A removed client's tokens (sub = its id) live on until they expire: meanwhile no user
    // may take the name, while a client added again may.
    deployment.ok(&["client", "remove", "svc"], "").await;
    let taken = deployment
        .fails(&["user", "add", "svc", "--password-stdin"], "svc-pw-1")
        .await;
    assert!(taken.contains("was one"), "{taken}");
    deployment
        .ok(&["client", "add", "svc", "--secret-stdin"], WEB_SECRET)
        .await;
}

// ---------------------------------------------------------------------------------------------
// 9. Introspection follows RFC 7662 §4

async fn a_client_learns_only_about_its_own_tokens_rfc7662_4(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let (a_secret, b_secret) = (
        "client-a-secret-0123456789-0123456789",
        "client-b-secret-0123456789-0123456789",
    );
    deployment
        .ok(&["client", "add", "a", "--secret-stdin"], a_secret)
        .await;
    deployment
        .ok(&["client", "add", "b", "--secret-stdin"], b_secret)
        .await;
    let token: TokenResponse = deployment
        .client_credentials("a", a_secret)
        .await
        .json()
        .await
        .unwrap();

    let own = deployment
        .auth
        .introspect("a", a_secret, &token.access_token)
        .await;
    assert_eq!(own["active"], true);
    assert_eq!(own["client_id"], "a");
    assert_eq!(
        deployment
            .auth
            .introspect("b", b_secret, &token.access_token)
            .await,
        inactive(),
        "another client's token: exactly {{\"active\": false}}"
    );
    assert_eq!(
        deployment.introspect(&token.access_token).await["active"],
        true,
        "a client registered with --introspect learns about any token"
    );

    deployment
        .ok(&["client", "update", "b", "--introspect", "true"], "")
        .await;
    assert_eq!(
        deployment
            .auth
            .introspect("b", b_secret, &token.access_token)
            .await["active"],
        true
    );

    // A user's tokens through a confidential client: that client may see them.
    let user_tokens = alice_through_web(&deployment).await;
    for token in [
        user_tokens.access_token.as_str(),
        refresh_token_of(&user_tokens),
    ] {
        assert_eq!(
            deployment.auth.introspect("web", WEB_SECRET, token).await["active"],
            true
        );
        assert_eq!(
            deployment.auth.introspect("a", a_secret, token).await,
            inactive()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Bounded client ids

/// A client id over 256 bytes or with a control character is refused as `invalid_client`
/// before the store is asked, in every place a client can name itself (RFC 6749 §5.2).
async fn oversized_and_control_character_client_ids_are_invalid_client(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let long = "c".repeat(257);
    for id in [long.as_str(), "web\nforged log line", "tab\there"] {
        for client in [As::Named(id), As::Basic(id, WEB_SECRET)] {
            let started = Instant::now();
            let response = deployment.client_credentials_as(client).await;
            assert_eq!(
                status_and_error(response).await,
                (401, "invalid_client".to_owned()),
                "{id:?}"
            );
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        let introspected = deployment
            .auth
            .http
            .post(deployment.auth.url("/introspect"))
            .basic_auth(id, Some(WEB_SECRET))
            .form(&[("token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(introspected.status(), 401);
    }
    let refused = deployment.fails(&["client", "add", &long], "").await;
    assert!(refused.contains("256 bytes"), "{refused}");
}

/// The proof that nothing asks the store: with Redis frozen, a request that reached the store
/// would wait out its deadline and answer 503; an id or a name that cannot exist is refused at
/// once, as an unknown client or user is (RFC 6749 §5.2).
#[tokio::test]
async fn impossible_client_ids_and_usernames_are_refused_without_the_store() {
    let mut redis = system_tests::private_redis();
    let namespace = redis.namespace("lifecycle-frozen");
    let auth = TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await;
    let deployment = Deployment {
        auth,
        _namespace: None,
    };
    redis.pause();
    let long = "c".repeat(257);
    for client in [
        As::Named(&long),
        As::Basic(&long, WEB_SECRET),
        As::Named("a\u{7}b"),
    ] {
        let started = Instant::now();
        let response = deployment.client_credentials_as(client).await;
        assert_eq!(
            status_and_error(response).await,
            (401, "invalid_client".to_owned())
        );
        assert!(started.elapsed() < Duration::from_millis(1500));
    }
    let long_name = "u".repeat(257);
    let started = Instant::now();
    let response = deployment
        .login_as(As::NoClient, &long_name, "whatever-pw")
        .await;
    assert_eq!(
        status_and_error(response).await,
        (400, "invalid_grant".to_owned())
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
    // A possible id does reach the store, and the frozen store answers 503.
    let reached = deployment.client_credentials_as(As::Named("svc")).await;
    assert_eq!(reached.status(), 503);
    redis.resume();
}

on_both_stores!(
    every_client_id_names_a_registered_client,
    without_the_default_public_client_a_request_must_name_one,
    usernames_and_client_ids_never_collide_rfc9068_5,
    a_client_learns_only_about_its_own_tokens_rfc7662_4,
    oversized_and_control_character_client_ids_are_invalid_client,
);
