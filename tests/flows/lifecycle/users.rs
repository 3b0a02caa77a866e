//! User changes end sessions: a new password, disabling, removal, narrowed scopes.

use super::*;

async fn a_new_password_ends_every_session_of_the_user(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let (alice, bob) = two_users_logged_in(&deployment).await;
    deployment.assert_active(&alice, "before the change").await;

    deployment
        .ok(
            &["user", "passwd", "alice", "--password-stdin"],
            "alice-pw-2",
        )
        .await;
    deployment
        .assert_ended(&alice, "issued before the new password (RFC 7662 §2.2)")
        .await;
    deployment
        .assert_alive(&bob, "another user's session is untouched")
        .await;

    assert_eq!(
        deployment
            .login_as(As::NoClient, "alice", "alice-pw-1")
            .await
            .status(),
        400
    );
    let fresh = deployment.login(As::NoClient, "alice", "alice-pw-2").await;
    assert!(
        claims_of(&fresh.access_token)["iat"].as_u64().unwrap() <= unix_now(),
        "no iat in the future, which verifiers refuse (RFC 7519 §4.1.6)"
    );
    deployment
        .assert_alive(
            &fresh,
            "issued after the change, even within the same second",
        )
        .await;
}

async fn disabling_ends_sessions_and_enabling_does_not_revive_them(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let (alice, bob) = two_users_logged_in(&deployment).await;

    deployment.ok(&["user", "disable", "alice"], "").await;
    deployment
        .assert_ended(&alice, "the user is disabled")
        .await;
    deployment.ok(&["user", "enable", "alice"], "").await;
    deployment
        .assert_ended(&alice, "enable does not bring back what disable ended")
        .await;

    let again = deployment.login(As::NoClient, "alice", "alice-pw-1").await;
    deployment
        .assert_alive(&again, "a login after enable")
        .await;
    deployment
        .assert_alive(&bob, "another user's session is untouched")
        .await;
}

async fn a_username_removed_and_added_again_is_a_new_account(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let (alice, _) = two_users_logged_in(&deployment).await;

    deployment.ok(&["user", "remove", "alice"], "").await;
    assert_eq!(
        deployment
            .refresh(As::NoClient, refresh_token_of(&alice))
            .await
            .status(),
        400
    );
    deployment.add_user("alice", "alice-pw-1", "read").await;
    deployment
        .assert_ended(
            &alice,
            "the old account's tokens never speak for the new one",
        )
        .await;
    let new_account = deployment.login(As::NoClient, "alice", "alice-pw-1").await;
    deployment
        .assert_alive(&new_account, "the new account's own tokens")
        .await;
}

async fn narrowed_scopes_take_effect_at_the_next_refresh(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    deployment
        .add_user("alice", "alice-pw-1", "read write admin")
        .await;
    deployment
        .add_web(
            WEB_SECRET,
            &[WEB_GRANTS, &["--scope", "read write admin"]].concat(),
        )
        .await;
    let web = As::Basic("web", WEB_SECRET);
    let tokens = deployment.login(web, "alice", "alice-pw-1").await;
    assert_eq!(tokens.scope, "admin read write", "scopes come sorted");

    deployment
        .ok(&["user", "update", "alice", "--scope", "read write"], "")
        .await;
    let after_user: TokenResponse = deployment
        .refresh(web, refresh_token_of(&tokens))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after_user.scope, "read write", "the user's scope narrowed");
    assert_eq!(
        deployment.introspect(refresh_token_of(&after_user)).await["scope"],
        "read write",
        "introspection tells the scope the next refresh would grant"
    );

    deployment
        .ok(&["client", "update", "web", "--scope", "read"], "")
        .await;
    let after_client: TokenResponse = deployment
        .refresh(web, refresh_token_of(&after_user))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after_client.scope, "read", "the client's scope narrowed");
    assert_eq!(
        deployment.introspect(refresh_token_of(&after_client)).await["scope"],
        "read"
    );
    assert_eq!(claims_of(&after_client.access_token)["scope"], "read");

    let wider = deployment
        .token(
            web,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token_of(&after_client)),
                ("scope", "write"),
            ],
        )
        .await;
    assert_eq!(
        status_and_error(wider).await,
        (400, "invalid_scope".to_owned()),
        "no more than the user and the client may have now (RFC 6749 §6)"
    );

    deployment
        .ok(&["client", "update", "web", "--grant", "password"], "")
        .await;
    let refused = deployment
        .refresh(web, refresh_token_of(&after_client))
        .await;
    assert_eq!(
        status_and_error(refused).await,
        (400, "unauthorized_client".to_owned()),
        "a grant taken away in place"
    );
    assert_eq!(
        deployment.introspect(refresh_token_of(&after_client)).await,
        inactive(),
        "a refresh token that can no longer refresh is not active"
    );
    // Nothing to replace the scopes with is a usage error, not "no scope at all".
    let no_scope = deployment.cli(&["user", "update", "alice"], "").await;
    assert!(
        !no_scope.success() && no_scope.stderr.contains("--scope"),
        "{}",
        no_scope.stderr
    );
    deployment
        .ok(&["user", "update", "alice", "--no-scope"], "")
        .await;
}

on_both_stores!(
    a_new_password_ends_every_session_of_the_user,
    disabling_ends_sessions_and_enabling_does_not_revive_them,
    a_username_removed_and_added_again_is_a_new_account,
    narrowed_scopes_take_effect_at_the_next_refresh,
);
