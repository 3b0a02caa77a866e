//! The auth-server on a three-primary Redis Cluster (`AUTH_STORE=redis+cluster://…`, every node
//! a seed), started by the test kit on loopback ports:
//!
//! - two replicas share logins, refreshes, client credentials and revocations, as on one Redis;
//! - the real binary and its command line take the Cluster URL, and a wrong one stops the start
//!   with one line that names the store without its password;
//! - slots move between primaries (the refresh tokens' `{rt}`, `{users}`, `{clients}` and
//!   `{keys}`) while logins and refreshes run against both replicas: no request fails but with
//!   503 and `Retry-After`, every refresh token issued is found with the one successor its
//!   client received, and the newest of each chain still works.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server_plumbing::wire::TokenResponse;
use system_tests::binaries::{auth_env, binaries, cli, run_cli, start_server};
use system_tests::{error_of, reqwest, retry_after, TestAuth};
use test_kit::redis_cluster::{shared_redis_cluster, RedisCluster};

const SECRET: &str = "cluster-client-secret-0123456789-xx";

#[tokio::test]
async fn replicas_on_a_cluster_share_logins_refreshes_clients_and_revocations_rfc6749_rfc7009() {
    let cluster = tokio::task::spawn_blocking(shared_redis_cluster)
        .await
        .unwrap();
    let namespace = cluster.namespace("system-tests:cluster-replicas");
    let a = TestAuth::spawn_on_redis(&namespace.store_url(), |s| s.refresh_reuse_grace = 0).await;
    let b = a.spawn_replica(|s| s.refresh_reuse_grace = 0).await;

    // A login at A (RFC 6749 §4.3) refreshes at B and back at A (§6).
    let first = a.add_logged_in_user("alice", "alice-pw-1", "read").await;
    let at_b = b
        .refresh_grant(first.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(at_b.status(), 200, "B knows the family A started");
    let second: TokenResponse = at_b.json().await.unwrap();
    let at_a = a
        .refresh_grant(second.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(at_a.status(), 200, "A knows the token B minted");
    let third: TokenResponse = at_a.json().await.unwrap();
    let replay = b
        .refresh_grant(first.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(replay.status(), 400, "B sees that the first token was used");
    assert_eq!(error_of(replay).await, "invalid_grant");

    // A client added through A gets tokens at B (RFC 6749 §4.4).
    a.add_client("svc", SECRET, &["client_credentials"], "items:read", &[])
        .await;
    let service = b.client_credentials("svc", SECRET, "items:read").await;
    assert_eq!(service.scope, "items:read");

    // Revocation at B (RFC 7009 §2.1) is seen at A (RFC 7662 §2.2).
    a.add_introspecting_client("resource", SECRET).await;
    let fresh = a.password_grant("alice", "alice-pw-1").await;
    let revoked = b
        .revoke(&[
            ("token", fresh.refresh_token.as_deref().unwrap()),
            ("token_type_hint", "refresh_token"),
        ])
        .await;
    assert_eq!(revoked.status(), 200);
    let inactive = serde_json::json!({"active": false});
    assert_eq!(
        a.introspect("resource", SECRET, fresh.refresh_token.as_deref().unwrap())
            .await,
        inactive,
        "revoked at B, inactive at A"
    );
    assert_eq!(
        b.revoke(&[
            ("token", &fresh.access_token),
            ("token_type_hint", "access_token")
        ])
        .await
        .status(),
        200
    );
    assert_eq!(
        a.introspect("resource", SECRET, &fresh.access_token).await,
        inactive,
        "an access token revoked at B is inactive at A"
    );
    // The replay at B ended the family at A too (RFC 9700 §4.14.2).
    let ended = a
        .refresh_grant(third.refresh_token.as_deref().unwrap())
        .await;
    assert_eq!(ended.status(), 400);
    assert_eq!(error_of(ended).await, "invalid_grant");
}

#[tokio::test]
async fn the_binary_and_its_command_line_run_on_a_cluster_url() {
    let cluster = tokio::task::spawn_blocking(shared_redis_cluster)
        .await
        .unwrap();
    let namespace = cluster.namespace("system-tests:cluster-binary");
    let store = namespace.store_url();
    let dir = tempfile::tempdir().unwrap();
    let env = auth_env(dir.path(), &[("AUTH_STORE", &store)]);
    let binaries = binaries().await;
    let password = "cluster-user-password-1";
    cli(
        &binaries.auth,
        &env,
        &[
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--scope",
            "read",
        ],
        password,
    )
    .await;
    let listed = cli(&binaries.auth, &env, &["user", "list"], "").await;
    assert!(listed.contains("carol"), "{listed}");
    let server = start_server(
        &binaries.auth,
        dir.path().join("auth.log"),
        "AUTH_LISTEN",
        |addr| {
            let mut env = env.clone();
            env.push(("AUTH_ISSUER".to_owned(), format!("http://{addr}")));
            env
        },
    )
    .await;
    let http = reqwest::Client::new();
    let login = http
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "carol"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let tokens: TokenResponse = login.json().await.unwrap();
    let refresh = http
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh_token.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), 200);

    // A Cluster URL that cannot work stops the start with one line, without the password.
    for (store, says) in [
        (
            "redis+cluster://:cluster-pw-x@127.0.0.1:1,127.0.0.1:2".to_owned(),
            "redis+cluster://:redacted@127.0.0.1:1,127.0.0.1:2",
        ),
        (
            format!("{}/3", cluster.url().replace("://", "://:cluster-pw-x@")),
            "database 0 only",
        ),
    ] {
        let env = auth_env(dir.path(), &[("AUTH_STORE", &store)]);
        let run = run_cli(&binaries.auth, &env, &["user", "list"], "").await;
        assert!(!run.success(), "{}{}", run.stdout, run.stderr);
        let error = run.one_error_line(says);
        assert!(error.contains(says), "{error}");
        assert!(!error.contains("cluster-pw-x"), "{error}");
    }
}

/// How the load went: every answer by status, and each login's chain of refresh tokens.
#[derive(Default)]
struct Tally {
    statuses: Mutex<HashMap<u16, usize>>,
    /// Answers received while a slot was moving.
    during_moves: AtomicUsize,
    chains: Mutex<Vec<Vec<String>>>,
}

/// Workers that log in, then refresh the newest token of their chain over and over at the
/// replicas in turn, starting a new chain now and then. A 503 must carry `Retry-After` and is
/// sent again: a refresh that ran before its answer was lost finds its pair replayed within the
/// grace window.
async fn load(
    replicas: [Arc<TestAuth>; 2],
    user: String,
    tally: Arc<Tally>,
    moving: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let login = [
            ("grant_type", "password"),
            ("username", user.as_str()),
            ("password", "load-pw-1"),
        ];
        let Some(tokens) = send(&replicas, &mut turn, &login, &tally, &moving).await else {
            continue;
        };
        let mut chain = vec![tokens.refresh_token.unwrap()];
        for _ in 0..25 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let newest = chain.last().unwrap().clone();
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", newest.as_str()),
            ];
            let rotated = loop {
                if let Some(rotated) = send(&replicas, &mut turn, &form, &tally, &moving).await {
                    break rotated;
                }
            };
            chain.push(rotated.refresh_token.unwrap());
        }
        tally.chains.lock().unwrap().push(chain);
    }
}

/// One `POST /token` at the next replica: the tokens on 200, `None` on 503 (after a short
/// wait); any other answer fails the test.
async fn send(
    replicas: &[Arc<TestAuth>; 2],
    turn: &mut usize,
    form: &[(&str, &str)],
    tally: &Tally,
    moving: &AtomicBool,
) -> Option<TokenResponse> {
    let replica = &replicas[*turn % 2];
    *turn += 1;
    let response = replica.token(form).await;
    let status = response.status().as_u16();
    *tally.statuses.lock().unwrap().entry(status).or_default() += 1;
    if moving.load(Ordering::Relaxed) {
        tally.during_moves.fetch_add(1, Ordering::Relaxed);
    }
    match status {
        200 => Some(response.json().await.unwrap()),
        503 => {
            assert!(retry_after(&response) > 0, "a 503 names Retry-After");
            assert_eq!(error_of(response).await, "temporarily_unavailable");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
        _ => {
            let body = response.text().await.unwrap_or_default();
            panic!("{} answered {status} while slots moved: {body}", form[0].1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slots_move_between_primaries_under_login_and_refresh_load_and_nothing_is_lost() {
    let started = Instant::now();
    let cluster = Arc::new(
        tokio::task::spawn_blocking(RedisCluster::start_or_panic)
            .await
            .unwrap(),
    );
    let namespace = cluster.namespace("system-tests:resharding");
    let grace = |s: &mut auth_server::Settings| s.refresh_reuse_grace = 30;
    let a = TestAuth::spawn_on_redis(&namespace.store_url(), grace).await;
    let b = a.spawn_replica(grace).await;
    const WORKERS: usize = 4;
    for worker in 0..WORKERS {
        a.add_user(&format!("load-{worker}"), "load-pw-1", "read")
            .await;
    }
    a.add_client("svc", SECRET, &["client_credentials"], "items:read", &[])
        .await;

    // Refresh tokens of another store in the same slot, so that the slot moves in many steps.
    let tag_key = |tag: &str| format!("{}{{{tag}}}:", namespace.prefix());
    let filler = {
        let cluster = cluster.clone();
        let key = tag_key("rt");
        tokio::task::spawn_blocking(move || {
            let slot = cluster.slot_of(&key);
            let owner = cluster.owner_of(slot);
            let mut connection = cluster.nodes()[owner].connect().unwrap();
            let mut pipeline = redis::pipe();
            for index in 0..1500 {
                pipeline
                    .cmd("HSET")
                    .arg(format!("{key}filler-{index}"))
                    .arg("family_id")
                    .arg("filler")
                    .ignore();
            }
            pipeline.query::<()>(&mut connection).unwrap();
        })
    };
    filler.await.unwrap();

    let (a, b) = (Arc::new(a), Arc::new(b));
    let tally = Arc::new(Tally::default());
    let (moving, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            tokio::spawn(load(
                [a.clone(), b.clone()],
                format!("load-{worker}"),
                tally.clone(),
                moving.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Each tag's slot goes to the next primary, key batch by key batch, while the load runs.
    let mut moves = Vec::new();
    for tag in ["rt", "users", "clients", "keys"] {
        let cluster = cluster.clone();
        let key = tag_key(tag);
        moving.store(true, Ordering::Relaxed);
        let move_started = Instant::now();
        let (slot, from, to, keys) = tokio::task::spawn_blocking(move || {
            let slot = cluster.slot_of(&key);
            let from = cluster.owner_of(slot);
            let to = (from + 1) % cluster.nodes().len();
            let keys = cluster.move_slot(slot, to, Duration::from_millis(25));
            assert_eq!(cluster.owner_of(slot), to);
            (slot, from, to, keys)
        })
        .await
        .unwrap();
        moving.store(false, Ordering::Relaxed);
        moves.push(format!(
            "{{{tag}}}: slot {slot}, {keys} keys, node {from} -> {to} in {:?}",
            move_started.elapsed()
        ));
        // client_credentials between moves, at both replicas.
        a.client_credentials("svc", SECRET, "items:read").await;
        b.client_credentials("svc", SECRET, "items:read").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(20), worker)
            .await
            .expect("the load stops")
            .unwrap();
    }

    let statuses = tally.statuses.lock().unwrap().clone();
    let chains = tally.chains.lock().unwrap().clone();
    let during_moves = tally.during_moves.load(Ordering::Relaxed);
    eprintln!("moves: {moves:?}; answers: {statuses:?}; {during_moves} while moving");
    // Few: while the `{rt}` slot moves, a rotation (a script over the token and its new
    // successor) is answered `TRYAGAIN` until the slot has moved, and waits or ends in 503.
    assert!(
        during_moves >= 5,
        "the load ran while slots moved: {during_moves} answers"
    );
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 100,
        "{statuses:?}"
    );

    // Every token issued is in the store with exactly the successor its client received: no
    // refresh was lost and no family has two live successors.
    let store = &a.store;
    let mut issued = 0;
    for chain in &chains {
        for pair in chain.windows(2) {
            let id = auth_server::tokens::refresh_token_id(&pair[0]);
            let record = store
                .refresh(&id)
                .await
                .unwrap()
                .expect("an issued token is kept");
            assert!(record.used_at.is_some(), "a refreshed token is used");
            assert_eq!(
                record.successor_id.as_deref(),
                Some(auth_server::tokens::refresh_token_id(&pair[1]).as_str()),
                "one successor, the one the client got"
            );
            issued += 1;
        }
        let newest = chain.last().unwrap();
        let record = store
            .refresh(&auth_server::tokens::refresh_token_id(newest))
            .await
            .unwrap()
            .expect("the newest token is kept");
        assert!(record.used_at.is_none(), "the newest token is unused");
    }
    // The newest token of each chain still works, once, at either replica.
    for (index, chain) in chains.iter().enumerate() {
        let replica = if index % 2 == 0 { &a } else { &b };
        let response = replica.refresh_grant(chain.last().unwrap()).await;
        assert_eq!(response.status(), 200, "chain {index}");
        issued += 1;
    }
    assert!(issued > 100, "{issued} refreshes checked");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}
