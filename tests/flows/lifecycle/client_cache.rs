//! `AUTH_CLIENT_CACHE=true`: two replicas on one Redis hold the clients in memory. A change made
//! with the command line holds at both within `AUTH_KEY_SYNC_INTERVAL`, a new secret or a new
//! client works at once, and no token a replica mints from the record it held after a removal
//! or an emergency rotation is active (RFC 7662 §2.2; the cut-off lies past the bound).

use super::*;

/// The replicas' `AUTH_KEY_SYNC_INTERVAL`: the bound on how long a held record is served.
const SYNC: u64 = 2;

async fn two_caching_replicas() -> (Deployment, Deployment) {
    let caching = |settings: &mut auth_server::Settings| {
        settings.client_cache = true;
        settings.key_sync_interval = SYNC;
        settings.key_publish_ahead = 3 * SYNC;
    };
    let a = deploy(Backend::Redis, caching).await;
    let b = Deployment {
        auth: a.auth.spawn_replica(caching).await,
        _namespace: None,
    };
    (a, b)
}

/// Asks both replicas for a client_credentials token with `secret` every 50 ms until each
/// answers `refused`; asserts that each did so within the bound after `since` (the command's
/// end), and, with `minted_inactive`, that every token issued meanwhile is inactive at
/// introspection.
async fn refused_by_both_within_the_bound(
    replicas: [&Deployment; 2],
    id: &str,
    secret: &str,
    refused: u16,
    since: Instant,
    minted_inactive: bool,
) {
    let bound = Duration::from_secs(SYNC) + Duration::from_millis(700);
    let mut pending = vec![0, 1];
    let mut minted = Vec::new();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for index in pending {
            let (status, token) = cc(replicas[index], id, secret).await;
            minted.extend(token);
            if status != refused {
                assert!(
                    since.elapsed() <= bound,
                    "replica {index} still answered {status} {:?} after the change",
                    since.elapsed()
                );
                still.push(index);
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if minted_inactive {
        for token in minted {
            assert_eq!(
                replicas[0].introspect(&token).await,
                inactive(),
                "a token minted from a held record after the change"
            );
        }
    }
}

/// A client_credentials request: the status, and the access token when one was issued.
async fn cc(replica: &Deployment, id: &str, secret: &str) -> (u16, Option<String>) {
    let response = replica.client_credentials(id, secret).await;
    let status = response.status().as_u16();
    let token = if status == 200 {
        response
            .json::<Value>()
            .await
            .ok()
            .and_then(|body| body["access_token"].as_str().map(str::to_owned))
    } else {
        None
    };
    (status, token)
}

#[tokio::test]
async fn rotation_without_overlap_holds_within_the_bound_and_the_new_secret_works_at_once_rfc6749_2_3_1(
) {
    let (a, b) = two_caching_replicas().await;
    let (old, new) = (
        "svc-old-secret-0123456789-0123456789",
        "svc-new-secret-0123456789-0123456789",
    );
    a.ok(
        &[
            "client",
            "add",
            "svc",
            "--secret-stdin",
            "--grant",
            "client_credentials",
        ],
        old,
    )
    .await;
    // A new client works at once at both, and is then held.
    for replica in [&a, &b] {
        assert_eq!(cc(replica, "svc", old).await.0, 200);
    }
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
    let rotated = Instant::now();
    // The new secret: at once, at both, though each still holds the old record.
    for replica in [&a, &b] {
        let (status, token) = cc(replica, "svc", new).await;
        assert_eq!(status, 200);
        let token = token.expect("a token");
        assert_eq!(a.introspect(&token).await["active"], json!(true));
    }
    // The old secret: refused within the bound at both; every token it still obtained from a
    // replica's held record meanwhile is inactive.
    refused_by_both_within_the_bound([&a, &b], "svc", old, 401, rotated, true).await;
    for replica in [&a, &b] {
        assert_eq!(cc(replica, "svc", new).await.0, 200);
    }
}

#[tokio::test]
async fn removal_and_a_removed_grant_hold_at_every_replica_within_the_bound_rfc6749_5_2() {
    let (a, b) = two_caching_replicas().await;
    let secret = "svc-secret-0123456789-0123456789-xx";
    a.ok(
        &[
            "client",
            "add",
            "svc",
            "--secret-stdin",
            "--grant",
            "client_credentials",
            "--grant",
            "password",
        ],
        secret,
    )
    .await;
    for replica in [&a, &b] {
        assert_eq!(cc(replica, "svc", secret).await.0, 200);
    }

    // The grant taken away: 400 unauthorized_client within the bound, at both.
    a.ok(&["client", "update", "svc", "--grant", "password"], "")
        .await;
    refused_by_both_within_the_bound([&a, &b], "svc", secret, 400, Instant::now(), false).await;

    // The grant back (held records are re-read within the bound), then the client removed.
    a.ok(
        &["client", "update", "svc", "--grant", "client_credentials"],
        "",
    )
    .await;
    refused_by_both_within_the_bound([&a, &b], "svc", secret, 200, Instant::now(), false).await;
    a.ok(&["client", "remove", "svc"], "").await;
    refused_by_both_within_the_bound([&a, &b], "svc", secret, 401, Instant::now(), true).await;
}
