//! Replicas: a change made by the command line reaches every auth-server sharing the store.

use super::*;

/// A change made by the command line reaches every replica at its next request: the store is
/// the only place either looks.
#[tokio::test]
async fn changes_made_by_the_cli_reach_every_replica() {
    let a = deploy(Backend::Redis, |_| {}).await;
    let b = Deployment {
        auth: a.auth.spawn_replica(|_| {}).await,
        _namespace: None,
    };

    let (alice, bob) = two_users_logged_in(&a).await;
    a.ok(
        &["user", "passwd", "alice", "--password-stdin"],
        "alice-pw-2",
    )
    .await;
    assert_eq!(
        b.refresh(As::NoClient, refresh_token_of(&alice))
            .await
            .status(),
        400
    );
    assert_eq!(b.introspect(&alice.access_token).await, inactive());
    assert_eq!(
        b.refresh(As::NoClient, refresh_token_of(&bob))
            .await
            .status(),
        200
    );

    let (old, new) = (
        "svc-old-secret-0123456789-0123456789",
        "svc-new-secret-0123456789-0123456789",
    );
    a.ok(&["client", "add", "svc", "--secret-stdin"], old).await;
    assert_eq!(b.client_credentials("svc", old).await.status(), 200);
    a.ok(
        &[
            "client",
            "rotate-secret",
            "svc",
            "--secret-stdin",
            "--overlap",
            "0",
        ],
        new,
    )
    .await;
    for replica in [&a, &b] {
        assert_eq!(replica.client_credentials("svc", old).await.status(), 401);
        assert_eq!(replica.client_credentials("svc", new).await.status(), 200);
    }
    a.ok(&["client", "remove", "svc"], "").await;
    assert_eq!(b.client_credentials("svc", new).await.status(), 401);
}
