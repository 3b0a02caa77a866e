//! The real auth-server binary on Redis behind Sentinel (`AUTH_STORE=redis+sentinel://…`), as
//! the README's "Redis Sentinel" shows, while its primary fails over under a load of logins
//! (RFC 6749 §4.3) and refreshes (RFC 6749 §6): once by `SENTINEL FAILOVER`, once by killing
//! the primary's process. During the switch every answer is 200, or 503
//! `temporarily_unavailable` with `Retry-After` (RFC 6749 §5.2); none is a 500, none hangs; after
//! it, requests succeed again without a restart. No refresh family ends up with two live
//! successors: the store holds at most one unused token per family that is not revoked, and a
//! token presented again after its successor was used is refused and ends the family.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server_plumbing::wire::TokenResponse;
use system_tests::binaries::{auth_env, binaries, run_cli, start_server, Server};
use system_tests::reqwest;
use test_kit::redis_sentinel::{SentinelRedis, PASSWORD as REDIS_PASSWORD};

const USER_PASSWORD: &str = "sentinel-user-password-1";

/// Clients that log in and refresh at the same time.
const WORKERS: usize = 4;

/// Refreshes each client makes on one family before it logs in again.
const REFRESHES_PER_LOGIN: usize = 15;

/// The longest one request may take: the store's two-second deadline, a search for the primary,
/// and room for a loaded machine. Longer is a hang.
const LONGEST_ANSWER: Duration = Duration::from_secs(6);

/// How long the load runs before the switch.
const LOAD_BEFORE_SWITCH: Duration = Duration::from_secs(2);

/// The longest the service may take to come back once the sentinels agree on the new primary:
/// the auth-server finds it, and a replica follows it (`WAIT`): after a `SENTINEL FAILOVER`,
/// the old primary, which the sentinels turn into a replica some ten seconds later.
const RECOVERY: Duration = Duration::from_secs(25);

/// Answers every client must get after the switch before the load stops.
const SUCCESSES_AFTER_SWITCH: usize = 5;

/// What the clients saw.
#[derive(Default)]
struct Seen {
    /// Each family's refresh tokens, in the order the client got them.
    families: Vec<Vec<String>>,
    unavailable: usize,
    successes_after_switch: usize,
}

/// What the clients share: when to stop, whether the switch is done, and how many clients
/// have had enough answers since.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    switched: AtomicBool,
    recovered: AtomicUsize,
}

/// How the primary goes.
#[derive(Clone, Copy)]
enum Switch {
    /// `SENTINEL FAILOVER`: the sentinels promote the replica while the old primary still runs
    /// (and takes writes until they make it a replica, some seconds later).
    Failover,
    /// The primary's process stops; the sentinels find it down and promote a replica.
    Kill,
}

/// With one replica, the store's `WAIT` for one (`replica_acks=1`, the default) cannot be
/// answered by the old primary once its replica is promoted, so nothing it takes from then on is
/// confirmed; the new primary confirms writes once the old one replicates it.
#[tokio::test]
async fn a_sentinel_failover_under_load_costs_at_most_503s_rfc6749_5_2() {
    failover_under_load(Switch::Failover, 1).await;
}

/// Two replicas: one is promoted, and the other acknowledges the writes to it.
#[tokio::test]
async fn a_killed_primary_under_load_costs_at_most_503s_rfc6749_5_2() {
    failover_under_load(Switch::Kill, 2).await;
}

async fn failover_under_load(switch: Switch, replicas: usize) {
    let started = Instant::now();
    let redis = Arc::new(Mutex::new(
        tokio::task::spawn_blocking(move || SentinelRedis::start_with_replicas(replicas))
            .await
            .unwrap(),
    ));
    let (store, prefix) = {
        let redis = redis.lock().unwrap();
        let prefix = test_kit::redis::fresh_prefix("sentinel-flow");
        (format!("{}?prefix={prefix}", redis.url()), prefix)
    };
    let dir = tempfile::tempdir().unwrap();
    // Logins that end in 503 keep the throttle slot they took, and these clients retry at once
    // (not after Retry-After): without a high limit the throttle, not the store, would answer.
    let env = auth_env(
        dir.path(),
        &[
            ("AUTH_STORE", &store),
            ("AUTH_LOGIN_MAX_FAILURES_PER_USER", "100000"),
            ("AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS", "100000"),
            // A refresh that ran but answered 503 is retried until the store confirms it: the
            // grace for a retry must outlast the switch, as the README advises.
            ("AUTH_REFRESH_REUSE_GRACE", "60"),
            ("RUST_LOG", "info"),
        ],
    );
    let binaries = binaries().await;
    // The setup, not what is tested: on a loaded machine the replica may take longer than the
    // store's 500 ms `WAIT` to acknowledge the first write, which the command reports as
    // unavailable after the write ran. Try again, and then a conflict means it was added.
    let add = [
        "user",
        "add",
        "alice",
        "--password-stdin",
        "--scope",
        "read",
    ];
    let mut unconfirmed = false;
    for attempt in 0.. {
        let run = run_cli(&binaries.auth, &env, &add, USER_PASSWORD).await;
        let text = format!("{}{}", run.stdout, run.stderr);
        if run.success() || (unconfirmed && text.contains("exists")) {
            break;
        }
        assert!(
            attempt < 5 && text.contains("not replicated in time"),
            "{add:?}: {text}"
        );
        unconfirmed = true;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let server = Arc::new(
        start_server(
            &binaries.auth,
            dir.path().join("auth.log"),
            "AUTH_LISTEN",
            |addr| {
                let mut env = env.clone();
                env.push(("AUTH_ISSUER".to_owned(), format!("http://{addr}")));
                env
            },
        )
        .await,
    );
    let http = reqwest::Client::builder()
        .timeout(LONGEST_ANSWER)
        .build()
        .unwrap();

    let shared = Arc::new(Load::default());
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (http, server, shared) = (http.clone(), server.clone(), shared.clone());
            tokio::spawn(async move { load(&http, &server, &shared).await })
        })
        .collect();

    tokio::time::sleep(LOAD_BEFORE_SWITCH).await;
    let switching = redis.clone();
    let (old, new) = tokio::task::spawn_blocking(move || {
        let mut redis = switching.lock().unwrap();
        let old = redis.primary_port();
        let new = match switch {
            Switch::Failover => redis.failover(),
            Switch::Kill => {
                redis.kill_primary();
                redis.wait_for_another_primary(old)
            }
        };
        (old, new)
    })
    .await
    .unwrap();
    assert_ne!(old, new);
    shared.switched.store(true, Ordering::SeqCst);
    let switched_at = Instant::now();
    while shared.recovered.load(Ordering::SeqCst) < WORKERS && switched_at.elapsed() < RECOVERY {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shared.stop.store(true, Ordering::SeqCst);

    let mut seen = Seen::default();
    for worker in workers {
        let part = worker.await.unwrap();
        assert!(
            part.successes_after_switch >= SUCCESSES_AFTER_SWITCH,
            "a client got {} answers but 503 within {RECOVERY:?} of the switch: the server \
             did not follow it",
            part.successes_after_switch
        );
        seen.families.extend(part.families);
        seen.unavailable += part.unavailable;
        seen.successes_after_switch += part.successes_after_switch;
    }
    assert!(seen.families.len() >= WORKERS);

    // Each family's last token refreshes; presented again at once, it gives the same successor
    // back (the grace for a lost answer), not a second one.
    for family in seen.families.iter().filter(|family| family.len() >= 2) {
        let last = family.last().unwrap();
        let next = refreshed(&http, &server, last).await;
        let again = refreshed(&http, &server, last).await;
        assert_eq!(next, again, "one token, one successor");
        // An older token, whose successor was used, is refused and ends the family.
        let older = &family[family.len() - 2];
        let reused = refresh(&http, &server, older).await;
        assert_eq!(reused.status(), 400, "a reused refresh token is refused");
        assert_eq!(system_tests::error_of(reused).await, "invalid_grant");
        let after = refresh(&http, &server, &next).await;
        assert_eq!(after.status(), 400, "the family ended with the reuse");
    }

    // In the store: no family that is not revoked holds two unused tokens.
    let checking = redis.clone();
    tokio::task::spawn_blocking(move || at_most_one_live_token_per_family(&checking, &prefix))
        .await
        .unwrap();

    let log = server.log_text();
    assert!(!log.contains(REDIS_PASSWORD), "the store's password leaked");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "took {:?}",
        started.elapsed()
    );
}

/// One client: logs in, refreshes its family [`REFRESHES_PER_LOGIN`] times, again, until
/// `stop`. A 503 is retried with the same token, as a client does.
async fn load(http: &reqwest::Client, server: &Server, shared: &Load) -> Seen {
    let mut seen = Seen::default();
    let stop = &shared.stop;
    let note = |seen: &mut Seen, ok: bool| {
        if ok && shared.switched.load(Ordering::SeqCst) {
            seen.successes_after_switch += 1;
            if seen.successes_after_switch == SUCCESSES_AFTER_SWITCH {
                shared.recovered.fetch_add(1, Ordering::SeqCst);
            }
        } else if !ok {
            seen.unavailable += 1;
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let login = answer(
            http.post(server.url("/token")).form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", USER_PASSWORD),
            ]),
            "login",
        )
        .await;
        let Some(tokens) = login else {
            note(&mut seen, false);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        note(&mut seen, true);
        let mut current = tokens.refresh_token.unwrap();
        let mut family = vec![current.clone()];
        let mut refreshes = 0;
        while refreshes < REFRESHES_PER_LOGIN && !stop.load(Ordering::SeqCst) {
            let Some(tokens) = answer(refresh_request(http, server, &current), "refresh").await
            else {
                note(&mut seen, false);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            note(&mut seen, true);
            current = tokens.refresh_token.unwrap();
            assert!(!family.contains(&current), "a successor seen before");
            family.push(current.clone());
            refreshes += 1;
        }
        seen.families.push(family);
    }
    seen
}

/// The tokens of a 200; `None` for a 503 `temporarily_unavailable` with `Retry-After`. Anything
/// else, or no answer within [`LONGEST_ANSWER`], fails the test.
async fn answer(request: reqwest::RequestBuilder, what: &str) -> Option<TokenResponse> {
    let sent = Instant::now();
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("{what}: no answer after {:?}: {err}", sent.elapsed()));
    let status = response.status();
    if status == 200 {
        return Some(response.json().await.unwrap());
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.text().await.unwrap();
    assert_eq!(status, 503, "{what}: {body}");
    assert!(
        retry_after.is_some_and(|seconds| seconds.parse::<u64>().is_ok_and(|s| s >= 1)),
        "{what}: a 503 without Retry-After"
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{what}: {body}");
    None
}

fn refresh_request(
    http: &reqwest::Client,
    server: &Server,
    token: &str,
) -> reqwest::RequestBuilder {
    http.post(server.url("/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
}

async fn refresh(http: &reqwest::Client, server: &Server, token: &str) -> reqwest::Response {
    refresh_request(http, server, token).send().await.unwrap()
}

/// The successor `token` gives; the switch is over, so it must be a 200.
async fn refreshed(http: &reqwest::Client, server: &Server, token: &str) -> String {
    let response = refresh(http, server, token).await;
    assert_eq!(response.status(), 200, "refreshing after the switch");
    let tokens: TokenResponse = response.json().await.unwrap();
    tokens.refresh_token.unwrap()
}

/// Reads every refresh token under `prefix` on the primary and checks that no family that is
/// not revoked holds more than one unused token.
fn at_most_one_live_token_per_family(redis: &Mutex<SentinelRedis>, prefix: &str) {
    let redis = redis.lock().unwrap();
    let mut connection = redis.node(redis.primary_port()).connect().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}{{rt}}:*"))
        .query(&mut connection)
        .unwrap();
    assert!(!keys.is_empty(), "no refresh tokens under {prefix}");
    let mut unused: HashMap<String, usize> = HashMap::new();
    for key in keys {
        let token: HashMap<String, Vec<u8>> = redis::cmd("HGETALL")
            .arg(&key)
            .query(&mut connection)
            .unwrap();
        let family = String::from_utf8(token["family_id"].clone()).unwrap();
        let count = unused.entry(family).or_default();
        if !token.contains_key("used_at") {
            *count += 1;
        }
    }
    for (family, count) in unused {
        let revoked: bool = redis::cmd("EXISTS")
            .arg(format!("{prefix}revoked-family:{family}"))
            .query(&mut connection)
            .unwrap();
        assert!(
            revoked || count <= 1,
            "family {family} has {count} live refresh tokens"
        );
    }
}
