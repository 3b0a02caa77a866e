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
//!
//! This file holds the load the test runs through (workers, their tally, the JWKS round robin);
//! the test itself is in `under_load.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_server::keys::lifecycle::Rotation;
use auth_server::store::{KeyRevocation, KeyState, SigningKeyRecord};
use base64::Engine;
use system_tests::{claims_of, header_of, metric_value, shared_redis, TestAuth, TestResource};
use test_kit::unix_now;

const SECRET: &str = "rotation-client-secret-0123456789-abcdef";
const ACCESS_TTL: u64 = 6;
const PUBLISH_AHEAD: u64 = 4;
const SYNC: u64 = 1;
const ROTATION_INTERVAL: u64 = 8;
const REMOVAL_LEEWAY: u64 = 1;
/// A token counts as valid while it has at least this long to live when it is sent.
const VALIDITY_MARGIN: u64 = 2;
const WORKERS: usize = 3;

mod under_load;

fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// The `kid` and `exp` of a JWT, unverified.
fn kid_and_exp(jwt: &str) -> (String, u64) {
    (
        header_of(jwt)["kid"].as_str().unwrap().to_owned(),
        claims_of(jwt)["exp"].as_u64().unwrap(),
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

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
}
