//! Client changes end the client's tokens, and a rotated secret overlaps without an outage.

use super::*;

async fn removing_a_client_ends_its_families_even_when_added_again(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let tokens = alice_through_web(&deployment).await;
    assert_eq!(
        status_and_error(
            deployment
                .refresh(As::Named("web"), refresh_token_of(&tokens))
                .await
        )
        .await,
        (401, "invalid_client".to_owned()),
        "a confidential client's family refreshes only with its authentication"
    );
    assert_eq!(
        status_and_error(
            deployment
                .refresh(As::NoClient, refresh_token_of(&tokens))
                .await
        )
        .await,
        (401, "invalid_client".to_owned())
    );

    deployment.ok(&["client", "remove", "web"], "").await;
    for client in [As::Named("web"), As::Basic("web", WEB_SECRET), As::NoClient] {
        assert_eq!(
            status_and_error(deployment.refresh(client, refresh_token_of(&tokens)).await).await,
            (401, "invalid_client".to_owned()),
            "no client named web any more"
        );
    }
    assert_eq!(
        deployment.introspect(&tokens.access_token).await,
        inactive()
    );
    assert_eq!(
        deployment.introspect(refresh_token_of(&tokens)).await,
        inactive()
    );

    let new_secret = "another-web-secret-0123456789-abcdefgh";
    deployment.add_web(new_secret, WEB_GRANTS).await;
    assert_eq!(
        status_and_error(
            deployment
                .refresh(As::Basic("web", new_secret), refresh_token_of(&tokens))
                .await
        )
        .await,
        (400, "invalid_grant".to_owned()),
        "a client added again under the same id is another client"
    );
    assert_eq!(
        deployment.introspect(&tokens.access_token).await,
        inactive()
    );
    let fresh = deployment
        .login(As::Basic("web", new_secret), "alice", "alice-pw-1")
        .await;
    assert_eq!(
        deployment
            .refresh(As::Basic("web", new_secret), refresh_token_of(&fresh))
            .await
            .status(),
        200
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Secret rotation without an outage

async fn a_rotated_secret_overlaps_then_stops(backend: Backend) {
    let deployment = deploy(backend, |_| {}).await;
    let old = "svc-old-secret-0123456789-0123456789";
    let new = "svc-new-secret-0123456789-0123456789";
    deployment
        .ok(&["client", "add", "svc", "--secret-stdin"], old)
        .await;
    let before = deployment.client_credentials("svc", old).await;
    assert_eq!(before.status(), 200);
    let before: TokenResponse = before.json().await.unwrap();

    let rotated = deployment
        .cli(
            &[
                "client",
                "rotate-secret",
                "svc",
                "--secret-stdin",
                "--overlap",
                "3",
            ],
            new,
        )
        .await;
    assert!(rotated.success(), "{}", rotated.stderr);
    assert!(
        !rotated.stdout.contains(new),
        "a secret read from stdin is not printed"
    );
    let listed = deployment.ok(&["client", "list"], "").await;
    assert!(listed.contains("old-secret-ends="), "{listed}");
    assert!(!listed.contains(old) && !listed.contains(new));
    let again = deployment
        .fails(&["client", "rotate-secret", "svc", "--secret-stdin"], new)
        .await;
    assert!(
        again.contains("--force"),
        "a second rotation would end a secret still in use: {again}"
    );

    assert_eq!(
        deployment.client_credentials("svc", new).await.status(),
        200
    );
    assert_eq!(
        deployment.client_credentials("svc", old).await.status(),
        200,
        "the old secret works during the overlap"
    );
    assert_eq!(
        deployment.introspect(&before.access_token).await["active"],
        true
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = deployment.client_credentials("svc", old).await;
        if response.status() == 401 {
            assert_eq!(error_of(response).await, "invalid_client");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old secret still works after its overlap"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        deployment.client_credentials("svc", new).await.status(),
        200
    );
    assert!(!deployment
        .ok(&["client", "list"], "")
        .await
        .contains("old-secret-ends="));

    // A secret given out: --overlap 0 stops it at once and cuts off its access tokens.
    let generated = deployment
        .ok(&["client", "rotate-secret", "svc", "--overlap", "0"], "")
        .await;
    let newest = generated
        .lines()
        .find_map(|line| line.strip_prefix("client_secret="))
        .unwrap()
        .to_owned();
    assert!(newest.len() >= 43, "256 random bits");
    assert_eq!(
        status_and_error(deployment.client_credentials("svc", new).await).await,
        (401, "invalid_client".to_owned())
    );
    assert_eq!(
        deployment.introspect(&before.access_token).await,
        inactive(),
        "access tokens issued before a rotation without overlap are inactive"
    );
    let after = deployment.client_credentials("svc", &newest).await;
    assert_eq!(after.status(), 200);
    let after: TokenResponse = after.json().await.unwrap();
    assert_eq!(
        deployment.introspect(&after.access_token).await["active"],
        true
    );

    let short = deployment
        .fails(
            &["client", "rotate-secret", "svc", "--secret-stdin"],
            "too-short",
        )
        .await;
    assert!(short.contains("at least 32 characters"), "{short}");
    deployment
        .ok(&["client", "add", "spa", "--public"], "")
        .await;
    let public = deployment
        .fails(&["client", "rotate-secret", "spa"], "")
        .await;
    assert!(public.contains("public"), "{public}");
    let unknown = deployment
        .fails(&["client", "rotate-secret", "nobody"], "")
        .await;
    assert!(unknown.contains("unknown client"), "{unknown}");
}

on_both_stores!(
    removing_a_client_ends_its_families_even_when_added_again,
    a_rotated_secret_overlaps_then_stops,
);
