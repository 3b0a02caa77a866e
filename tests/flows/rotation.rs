//! The proof of the key lifecycle: two auth-server replicas on one Redis and a resource server
//! keep issuing and verifying tokens while the signing key rotates several times, by command
//! (`keys rotate`, through the same library call) and by schedule, and not one valid token is
//! refused. Tokens signed before a rotation are re-used until they expire; a retired key leaves
//! the JWKS only after its tokens are gone; a revoked key's tokens are refused.
//!
//! Timings are short (access tokens live 6 s, keys are published 4 s before they sign, replicas
//! sync every second, the schedule rotates every 8 s) but every check allows for a slow, loaded
//! machine: deadlines, never exact instants. The resource server fetches the JWKS through a
//! round robin over both replicas, as behind a load balancer, with its refresh ceiling at 1 s
//! (the JWKS max-age is 2 s here). `--nocapture` shows the counts.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_server::keys::lifecycle::Rotation;
use auth_server::store::{KeyRevocation, KeyState, SigningKeyRecord};
use base64::Engine;
use system_tests::{metric_value, shared_redis, TestAuth, TestResource};

const SECRET: &str = "rotation-client-secret-0123456789-abcdef";
const ACCESS_TTL: u64 = 6;
const PUBLISH_AHEAD: u64 = 4;
const SYNC: u64 = 1;
const ROTATION_INTERVAL: u64 = 8;
const REMOVAL_LEEWAY: u64 = 1;
/// A token counts as valid while it has at least this long to live when it is sent.
const VALIDITY_MARGIN: u64 = 2;
const WORKERS: usize = 3;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// The `kid` and `exp` of a JWT, unverified.
fn kid_and_exp(jwt: &str) -> (String, u64) {
    let mut parts = jwt.split('.');
    let decode = |part: &str| -> serde_json::Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let header = decode(parts.next().unwrap());
    let claims = decode(parts.next().unwrap());
    (
        header["kid"].as_str().unwrap().to_owned(),
        claims["exp"].as_u64().unwrap(),
    )
}

struct Issued {
    token: String,
    kid: String,
    exp: u64,
}

/// What the load loops and the driver share.
#[derive(Default)]
struct Tally {
    stop: AtomicBool,
    issued: AtomicU64,
    token_failures: AtomicU64,
    fresh_ok: AtomicU64,
    reused_ok: AtomicU64,
    /// Re-used tokens accepted while their key was retired: signed before a rotation.
    reused_retired_ok: AtomicU64,
    refused_valid: AtomicU64,
    refused_revoked: AtomicU64,
    transport_errors: AtomicU64,
    /// Kids the driver has revoked (or is about to): their tokens may be refused.
    revoked: Mutex<HashSet<String>>,
    /// Kids the store had retired at the driver's last look.
    retired: Mutex<HashSet<String>>,
    /// The latest `exp` of a token seen signed by each kid.
    last_exp: Mutex<HashMap<String, u64>>,
    pool: Mutex<Vec<Issued>>,
    refusals: Mutex<Vec<String>>,
}

impl Tally {
    fn is_revoked(&self, kid: &str) -> bool {
        self.revoked.lock().unwrap().contains(kid)
    }

    /// Judges one answer of the resource server to a token sent at `sent_at`.
    fn judge(
        &self,
        issued: &Issued,
        sent_at: u64,
        response: Result<reqwest::Response, String>,
        reused: bool,
    ) {
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                self.transport_errors.fetch_add(1, Ordering::Relaxed);
                self.refusals
                    .lock()
                    .unwrap()
                    .push(format!("transport: {err}"));
                return;
            }
        };
        if response.status() == 200 {
            if reused {
                self.reused_ok.fetch_add(1, Ordering::Relaxed);
                if self.retired.lock().unwrap().contains(&issued.kid) {
                    self.reused_retired_ok.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                self.fresh_ok.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if self.is_revoked(&issued.kid) {
            self.refused_revoked.fetch_add(1, Ordering::Relaxed);
        } else if issued.exp >= sent_at + VALIDITY_MARGIN {
            self.refused_valid.fetch_add(1, Ordering::Relaxed);
            self.refusals.lock().unwrap().push(format!(
                "{} kid={} exp={} sent_at={sent_at} reused={reused}: {}",
                response.status(),
                issued.kid,
                issued.exp,
                system_tests::challenge(&response)
            ));
        }
    }
}

/// One load loop: a token from each replica in turn, verified at once, and up to two earlier
/// tokens that are still valid verified again.
async fn load(
    replicas: [Arc<TestAuth>; 2],
    api: Arc<TestResource>,
    tally: Arc<Tally>,
    seed: usize,
) {
    let mut turn = seed;
    while !tally.stop.load(Ordering::Relaxed) {
        turn += 1;
        let replica = &replicas[turn % 2];
        let response = replica
            .token_basic(
                "svc",
                SECRET,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "items:read"),
                ],
            )
            .await;
        if response.status() != 200 {
            tally.token_failures.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let body: serde_json::Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        let (kid, exp) = kid_and_exp(&token);
        tally.issued.fetch_add(1, Ordering::Relaxed);
        {
            let mut last_exp = tally.last_exp.lock().unwrap();
            let latest = last_exp.entry(kid.clone()).or_default();
            *latest = (*latest).max(exp);
        }
        let issued = Issued { token, kid, exp };
        let sent_at = unix_now();
        let answer = api
            .http
            .get(api.url("/items"))
            .bearer_auth(&issued.token)
            .send()
            .await;
        tally.judge(
            &issued,
            sent_at,
            answer.map_err(|err| err.to_string()),
            false,
        );

        let now = unix_now();
        let reuse: Vec<Issued> = {
            let mut pool = tally.pool.lock().unwrap();
            pool.retain(|old| old.exp >= now + VALIDITY_MARGIN);
            if pool.len() < 300 {
                pool.push(issued);
            }
            let n = pool.len();
            [turn * 7919 % n.max(1), turn * 104_729 % n.max(1)]
                .into_iter()
                .filter(|_| n > 0)
                .map(|index| Issued {
                    token: pool[index].token.clone(),
                    kid: pool[index].kid.clone(),
                    exp: pool[index].exp,
                })
                .collect()
        };
        for old in reuse {
            let sent_at = unix_now();
            let answer = api
                .http
                .get(api.url("/items"))
                .bearer_auth(&old.token)
                .send()
                .await;
            tally.judge(&old, sent_at, answer.map_err(|err| err.to_string()), true);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An HTTP front for the JWKS that sends each request to the next replica in turn, as a load
/// balancer would, and closes every connection so that the verifier cannot stick to one.
/// Returns its URL and how many fetches each replica served.
async fn jwks_round_robin(replicas: [String; 2]) -> (url::Url, Arc<[AtomicU64; 2]>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let served = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let counts = served.clone();
    let http = reqwest::Client::new();
    tokio::spawn(async move {
        let mut turn = 0usize;
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            turn += 1;
            let backend = turn % 2;
            let (url, http, counts) = (
                format!("{}/.well-known/jwks.json", replicas[backend]),
                http.clone(),
                counts.clone(),
            );
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let reply = match http.get(&url).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let cache_control = response
                            .headers()
                            .get("cache-control")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body = response.bytes().await.unwrap_or_default();
                        counts[backend].fetch_add(1, Ordering::Relaxed);
                        let mut reply = format!(
                            "HTTP/1.1 {status} X\r\ncache-control: {cache_control}\r\n\
                             content-type: application/json\r\ncontent-length: {}\r\n\
                             connection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        reply.extend_from_slice(&body);
                        reply
                    }
                    Err(_) => {
                        b"HTTP/1.1 502 X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
                    }
                };
                let _ = socket.write_all(&reply).await;
            });
        }
    });
    (url.parse().unwrap(), served)
}

async fn kids_of(auth: &TestAuth) -> HashSet<String> {
    auth.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn find(keys: &[SigningKeyRecord], state: KeyState) -> Option<&SigningKeyRecord> {
    keys.iter().find(|key| key.state == state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_rotate_by_command_and_schedule_across_replicas_with_no_valid_token_refused() {
    let namespace = shared_redis("rotation");
    let kek = base64::engine::general_purpose::STANDARD.encode(rand_bytes());
    let timings = move |settings: &mut auth_server::Settings| {
        settings.access_token_ttl = ACCESS_TTL;
        settings.key_publish_ahead = PUBLISH_AHEAD;
        settings.key_sync_interval = SYNC;
        settings.key_rotation_interval = ROTATION_INTERVAL;
        settings.key_removal_leeway = REMOVAL_LEEWAY;
        settings.key_encryption_key = Some(auth_server::settings::Secret(kek.clone()));
    };
    let a = TestAuth::spawn_on_redis(namespace.store_url(), &timings).await;
    let (keys_dir, issuer) = (a.settings.keys_dir.clone(), a.settings.issuer.clone());
    let b = TestAuth::spawn_on_redis(namespace.store_url(), |settings| {
        settings.keys_dir = keys_dir;
        settings.issuer = issuer;
        timings(settings);
    })
    .await;
    let jwks = a
        .http
        .get(a.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let max_age = jwks.headers()["cache-control"].to_str().unwrap().to_owned();
    assert_eq!(
        max_age,
        format!("public, max-age={}", PUBLISH_AHEAD - 2 * SYNC),
        "derived from the schedule"
    );
    a.add_client("svc", SECRET, &["client_credentials"], "items:read", &[])
        .await;

    let (jwks_url, served) = jwks_round_robin([a.url.clone(), b.url.clone()]).await;
    let api = TestResource::spawn_with(&a.url, true, |config| {
        config.jwks_url = Some(jwks_url);
        config.min_refresh = Duration::from_secs(1);
        config.max_refresh = Duration::from_secs(1);
        config.leeway = Duration::from_secs(REMOVAL_LEEWAY);
        config.unknown_kid_cooldown = Duration::from_millis(500);
    })
    .await;
    let (a, b, api) = (Arc::new(a), Arc::new(b), Arc::new(api));
    let lifecycle = a.key_lifecycle();
    let initial = a.active_kid().await;

    let tally = Arc::new(Tally::default());
    let workers: Vec<_> = (0..WORKERS)
        .map(|seed| {
            tokio::spawn(load(
                [a.clone(), b.clone()],
                api.clone(),
                tally.clone(),
                seed,
            ))
        })
        .collect();

    // Phase 1: rotations, alternately by command and by schedule, while the load runs.
    let started = Instant::now();
    let mut actives = vec![initial.clone()];
    let mut by_command: HashSet<String> = HashSet::new();
    let mut records_of_initial: Option<SigningKeyRecord> = None;
    let mut initial_left_jwks_at: Option<f64> = None;
    let mut disagreeing_since: Option<Instant> = None;
    let mut longest_disagreement = Duration::ZERO;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "rotations did not happen in time: {actives:?}"
        );
        let keys = lifecycle.list().await.unwrap();
        *tally.retired.lock().unwrap() = keys
            .iter()
            .filter(|key| key.state == KeyState::Retired)
            .map(|key| key.kid.clone())
            .collect();
        if let Some(record) = keys
            .iter()
            .find(|key| key.kid == initial && key.state == KeyState::Retired)
        {
            records_of_initial = Some(record.clone());
        }
        let active = find(&keys, KeyState::Active).unwrap().kid.clone();
        if actives.last() != Some(&active) {
            actives.push(active.clone());
        }
        let last_was_scheduled = !by_command.contains(actives.last().unwrap());
        if find(&keys, KeyState::Next).is_none() && last_was_scheduled && by_command.len() < 2 {
            match lifecycle.rotate(unix_now()).await.unwrap() {
                Rotation::Staged { kid, .. } => {
                    by_command.insert(kid);
                }
                Rotation::AlreadyStaged { .. } => {}
            }
        }

        let (kids_a, kids_b) = (kids_of(&a).await, kids_of(&b).await);
        if kids_a == kids_b {
            disagreeing_since = None;
        } else {
            let since = *disagreeing_since.get_or_insert_with(Instant::now);
            longest_disagreement = longest_disagreement.max(since.elapsed());
        }
        if kids_a.contains(&initial) || kids_b.contains(&initial) {
            initial_left_jwks_at = None;
        } else if initial_left_jwks_at.is_none() {
            initial_left_jwks_at = Some(unix_now_f64());
        }

        let commanded = actives
            .iter()
            .filter(|kid| by_command.contains(*kid))
            .count();
        let scheduled = actives.len() - 1 - commanded;
        if commanded >= 2 && scheduled >= 2 && initial_left_jwks_at.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        longest_disagreement < Duration::from_secs(3 * SYNC + 3),
        "the replicas published different key sets for {longest_disagreement:?}"
    );

    // The first key left the JWKS, and only after every token it signed had expired.
    let retired = records_of_initial.expect("the first key was seen retired");
    let (retired_at, expires_at) = (retired.retired_at.unwrap(), retired.expires_at.unwrap());
    assert_eq!(
        expires_at,
        retired_at + ACCESS_TTL + SYNC + REMOVAL_LEEWAY,
        "published for its tokens' lifetime, one sync interval and the leeway"
    );
    let left_at = initial_left_jwks_at.unwrap();
    let last_token_exp = tally.last_exp.lock().unwrap()[&initial];
    assert!(
        left_at >= last_token_exp as f64,
        "the first key left the JWKS at {left_at}, before its last token expired at {last_token_exp}"
    );
    assert!(
        left_at <= (expires_at + 3 * SYNC + 3) as f64,
        "the first key stayed in the JWKS until {left_at}, long after {expires_at}"
    );
    assert!(
        lifecycle
            .list()
            .await
            .unwrap()
            .iter()
            .all(|key| key.kid != initial),
        "and its record is gone"
    );

    // Phase 2: revoke the active key once a next key has been published long enough; the next
    // key takes over at once and the revoked key's tokens are refused, while the load runs.
    let (revoked_kid, revoked_token) = loop {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no next key was staged"
        );
        let keys = lifecycle.list().await.unwrap();
        let (Some(active), Some(next)) =
            (find(&keys, KeyState::Active), find(&keys, KeyState::Next))
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if unix_now() + 1 < next.activates_at {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let kid = active.kid.clone();
        // A token the key signed, valid long after the revocation has spread.
        let token = loop {
            let token = a
                .client_credentials("svc", SECRET, "items:read")
                .await
                .access_token;
            if kid_and_exp(&token).0 == kid {
                break token;
            }
            assert!(started.elapsed() < Duration::from_secs(180));
        };
        tally.revoked.lock().unwrap().insert(kid.clone());
        let outcome = lifecycle.revoke(&kid, unix_now()).await.unwrap();
        assert_eq!(
            outcome,
            KeyRevocation::Revoked {
                now_active: Some(next.kid.clone())
            },
            "the published next key signs at once"
        );
        break (kid, token);
    };
    let revoked_at = Instant::now();
    let refused = loop {
        let response = api.get("/items", &revoked_token).await;
        if response.status() == 401 {
            break system_tests::challenge(&response);
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(ACCESS_TTL - 1),
            "the revoked key's token was still accepted after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refused.contains(r#"error="invalid_token""#),
        "RFC 6750 §3.1: {refused}"
    );
    let refused_after = revoked_at.elapsed();
    assert!(!kids_of(&a).await.contains(&revoked_kid) && !kids_of(&b).await.contains(&revoked_kid));
    // The load runs on with the key that took over.
    tokio::time::sleep(Duration::from_secs(2 * SYNC + 1)).await;

    tally.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    // Phase 3, the cost of revoking without a published next key: a new key signs at once, and
    // its first tokens may be refused until the resource server has fetched it.
    let keys = lifecycle.list().await.unwrap();
    let active = find(&keys, KeyState::Active).unwrap().kid.clone();
    let KeyRevocation::Revoked {
        now_active: Some(fresh),
    } = lifecycle.revoke(&active, unix_now()).await.unwrap()
    else {
        panic!("revoking the active key names its successor");
    };
    let cost_started = Instant::now();
    let mut refused_fresh = 0;
    loop {
        let token = b
            .client_credentials("svc", SECRET, "items:read")
            .await
            .access_token;
        if kid_and_exp(&token).0 == fresh {
            if api.get("/items", &token).await.status() == 200 {
                break;
            }
            refused_fresh += 1;
        }
        assert!(
            cost_started.elapsed() < Duration::from_secs(4 * SYNC + 6),
            "tokens of the fresh key were still refused after {:?}",
            cost_started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each replica counts the key changes it followed and shows the keys it publishes.
    for replica in [&a, &b] {
        let metrics = replica.metrics().await;
        let rotations = metric_value(&metrics, "signing_key_rotations_total", &[]);
        assert!(rotations >= (actives.len() - 1) as f64);
        assert_eq!(
            metric_value(&metrics, "signing_keys", &[("state", "active")]),
            1.0
        );
        assert_eq!(
            metric_value(&metrics, "signing_key_sync_failures_total", &[]),
            0.0
        );
    }

    let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let refusals = tally.refusals.lock().unwrap().clone();
    println!(
        "rotation: {} rotations ({} by command, {} by schedule) in {:?}; tokens issued {}, \
         token failures {}, verified fresh {}, re-used {} (of them while their key was retired {}), \
         refused valid {}, refused after revocation {}, transport errors {}; JWKS fetches from \
         replica a {}, b {}; longest JWKS disagreement {:?}; revoked key refused after {:?}; \
         fresh key's tokens refused {} times before its first acceptance after {:?}",
        actives.len() - 1,
        by_command.len(),
        actives.len() - 1 - by_command.len(),
        started.elapsed(),
        count(&tally.issued),
        count(&tally.token_failures),
        count(&tally.fresh_ok),
        count(&tally.reused_ok),
        count(&tally.reused_retired_ok),
        count(&tally.refused_valid),
        count(&tally.refused_revoked),
        count(&tally.transport_errors),
        served[0].load(Ordering::Relaxed),
        served[1].load(Ordering::Relaxed),
        longest_disagreement,
        refused_after,
        refused_fresh,
        cost_started.elapsed(),
    );
    assert_eq!(
        count(&tally.refused_valid),
        0,
        "refused valid tokens: {refusals:#?}"
    );
    assert_eq!(count(&tally.transport_errors), 0, "{refusals:#?}");
    assert_eq!(
        count(&tally.token_failures),
        0,
        "every token request succeeded"
    );
    assert!(count(&tally.issued) >= 100, "the load ran");
    assert!(
        count(&tally.reused_retired_ok) > 0,
        "tokens signed before a rotation were accepted after it"
    );
    assert!(
        served[0].load(Ordering::Relaxed) > 0 && served[1].load(Ordering::Relaxed) > 0,
        "the resource server fetched keys from both replicas"
    );
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
}
