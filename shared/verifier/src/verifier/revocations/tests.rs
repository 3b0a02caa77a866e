use std::sync::atomic::Ordering;
use std::sync::Mutex;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use serde_json::json;

use super::super::{KeySet, Readiness, Verifier, VerifierConfig, VerifyError};
use super::*;

fn sha(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, name.as_bytes()).as_ref())
}

fn claims(sub: &str, client_id: &str, iat: u64, jti: &str) -> AccessClaims {
    serde_json::from_value(json!({
        "iss": "i", "sub": sub, "aud": "api", "exp": iat + 900, "iat": iat,
        "jti": jti, "client_id": client_id,
    }))
    .unwrap()
}

fn feed(value: serde_json::Value) -> Feed {
    Feed::parse(value.to_string().as_bytes()).unwrap()
}

const NOW: u64 = 1_700_000_000;

#[test]
fn a_revoked_jti_and_tokens_before_a_cut_off_are_refused_and_no_one_else() {
    let entries = Entries::default().after(
        feed(json!({
            "cursor": "e.3", "complete": true,
            "tokens": [{"jti": "stolen", "until": NOW + 960}],
            "subjects": [{"sub_sha256": sha("alice"), "not_before": NOW, "until": NOW + 1200}],
            "clients": [{"client_id_sha256": sha("batch"), "not_before": NOW, "until": NOW + 1200}],
        })),
        NOW,
    );
    assert_eq!(entries.len(), 3);
    assert_eq!(entries.cursor.as_deref(), Some("e.3"));
    assert!(
        entries.refuses(&claims("bob", "web", NOW + 5, "stolen")),
        "jti"
    );
    assert!(
        entries.refuses(&claims("alice", "web", NOW - 1, "a1")),
        "before the user's cut"
    );
    assert!(
        !entries.refuses(&claims("alice", "web", NOW, "a2")),
        "at the cut-off: minted after"
    );
    assert!(
        entries.refuses(&claims("bob", "batch", NOW - 1, "b1")),
        "before the client's cut"
    );
    assert!(!entries.refuses(&claims("bob", "batch", NOW + 1, "b2")));
    assert!(
        !entries.refuses(&claims("bob", "web", NOW - 100, "b3")),
        "someone else"
    );
    // A name is compared by its digest: the same text as a client is another entry.
    assert!(!entries.refuses(&claims("batch", "web", NOW - 1, "b4")));
}

#[test]
fn deltas_add_a_complete_list_replaces_and_until_expires_entries() {
    let first = Entries::default().after(
        feed(json!({
            "cursor": "e.1", "complete": true,
            "tokens": [{"jti": "t1", "until": NOW + 10}, {"jti": "t2", "until": NOW + 100}],
        })),
        NOW,
    );
    let delta = first.after(
        feed(json!({
            "cursor": "e.2", "complete": false,
            "tokens": [{"jti": "t3", "until": NOW + 100}],
            "subjects": [{"sub_sha256": sha("alice"), "not_before": NOW, "until": NOW + 100}],
        })),
        NOW,
    );
    assert_eq!(
        (first.len(), delta.len()),
        (2, 4),
        "the delta adds to a copy"
    );
    assert_eq!(delta.cursor.as_deref(), Some("e.2"));

    // The same user again: the later cut-off and the later end win.
    let later = delta.after(
        feed(json!({
            "cursor": "e.3", "complete": false,
            "subjects": [{"sub_sha256": sha("alice"), "not_before": NOW - 50, "until": NOW + 300}],
        })),
        NOW,
    );
    assert!(later.refuses(&claims("alice", "web", NOW - 1, "x")));
    let mut alice = [0u8; 32];
    alice.copy_from_slice(digest(&SHA256, b"alice").as_ref());
    assert_eq!(
        later.subjects.get(&alice),
        Some(&Cut {
            not_before: NOW,
            until: NOW + 300
        })
    );

    let aged = later.after(feed(json!({"cursor": "e.4", "complete": false})), NOW + 11);
    assert!(!aged.tokens.contains_key("t1"), "t1 past its until");
    assert!(aged.tokens.contains_key("t2"));

    let replaced = aged.after(
        feed(
            json!({"cursor": "f.9", "complete": true, "tokens": [{"jti": "t9", "until": NOW + 5}]}),
        ),
        NOW,
    );
    assert_eq!(replaced.len(), 1);
    assert!(replaced.tokens.contains_key("t9"));
    assert!(!replaced.refuses(&claims("alice", "web", NOW - 1, "x")));
}

#[test]
fn a_feed_with_a_bad_digest_or_shape_is_refused_whole() {
    for body in [
        json!({"cursor": "e.1", "complete": true,
               "subjects": [{"sub_sha256": "short", "not_before": 1, "until": 2}]}),
        json!({"cursor": "e.1", "complete": true,
               "clients": [{"client_id_sha256": sha("a") + "=", "not_before": 1, "until": 2}]}),
        json!({"complete": true}),
        json!({"cursor": "e.1", "complete": true, "tokens": [{"jti": "t"}]}),
    ] {
        assert!(Feed::parse(body.to_string().as_bytes()).is_err(), "{body}");
    }
    assert!(Feed::parse(b"not json").is_err());
}

#[test]
fn backoff_doubles_up_to_eight_intervals_with_jitter_in_the_upper_half() {
    let interval = Duration::from_secs(5);
    assert_eq!(backoff(interval, 1, 1.0), interval);
    assert_eq!(backoff(interval, 2, 1.0), interval * 2);
    assert_eq!(backoff(interval, 3, 1.0), interval * 4);
    assert_eq!(backoff(interval, 4, 1.0), interval * 8);
    assert_eq!(backoff(interval, 40, 1.0), interval * MAX_BACKOFF_FACTOR);
    assert_eq!(
        backoff(interval, 4, 0.0),
        interval * 4,
        "half of the full wait"
    );
    assert_eq!(backoff(interval, u32::MAX, 0.5), interval * 6);
    for _ in 0..100 {
        let fraction = random_fraction();
        assert!((0.0..=1.0).contains(&fraction), "{fraction}");
    }
}

/// An issuer on loopback: metadata (with or without the feed member), a JWKS of its own key,
/// and a revocation feed that answers what `feed` holds (a status and a body) and records the
/// request target of every feed request.
struct Issuer {
    base: String,
    key_pair: Arc<KeyPair>,
    feed: Arc<Mutex<(u16, String)>>,
    feed_requests: Arc<Mutex<Vec<String>>>,
    metadata_requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl Issuer {
    async fn start(advertise_feed: bool) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let key_pair = Arc::new(KeyPair::generate(KeySize::Rsa2048).unwrap());
        let feed = Arc::new(Mutex::new((503, "{}".to_owned())));
        let feed_requests = Arc::new(Mutex::new(Vec::new()));
        let metadata_requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut metadata = json!({
            "issuer": base, "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks.json"),
        });
        if advertise_feed {
            metadata["revocation_feed_endpoint"] = json!(format!("{base}/revocations"));
        }
        let metadata = metadata.to_string();
        let jwks = jwks(&key_pair);
        let (replying, recorded, counted) = (
            feed.clone(),
            feed_requests.clone(),
            metadata_requests.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (replying, recorded, counted) =
                    (replying.clone(), recorded.clone(), counted.clone());
                let (metadata, jwks) = (metadata.clone(), jwks.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&request);
                    let target = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let (status, body) = if target.starts_with("/.well-known/") {
                        counted.fetch_add(1, Ordering::SeqCst);
                        (200, metadata)
                    } else if target == "/jwks.json" {
                        (200, jwks)
                    } else if target.starts_with("/revocations") {
                        recorded.lock().unwrap().push(target);
                        replying.lock().unwrap().clone()
                    } else {
                        (404, "{}".to_owned())
                    };
                    let body = if status == 304 { String::new() } else { body };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncache-control: no-store\r\n\
                         content-type: application/json\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            base,
            key_pair,
            feed,
            feed_requests,
            metadata_requests,
        }
    }

    fn answer(&self, status: u16, body: serde_json::Value) {
        *self.feed.lock().unwrap() = (status, body.to_string());
    }

    fn feed_requests(&self) -> Vec<String> {
        self.feed_requests.lock().unwrap().clone()
    }

    fn config(&self) -> VerifierConfig {
        let mut config = VerifierConfig::new(self.base.parse().unwrap(), "api");
        config.unknown_kid_cooldown = Duration::from_secs(3600);
        config
    }

    /// A verifier holding this issuer's key, polling only when told to.
    fn verifier(&self, config: VerifierConfig) -> Verifier {
        let keys = KeySet::from_jwks(jwks(&self.key_pair).as_bytes(), Duration::from_secs(60));
        Verifier::with_keys(config, keys.unwrap()).unwrap()
    }

    fn token(&self, sub: &str, client_id: &str, iat: u64, jti: &str) -> String {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"});
        let claims = json!({
            "iss": self.base, "sub": sub, "aud": "api", "exp": unix_now() + 900, "iat": iat,
            "jti": jti, "client_id": client_id, "scope": "read",
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

fn jwks(key_pair: &KeyPair) -> String {
    let public = key_pair.public_key();
    let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
    let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
    json!({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": n, "e": e}]})
        .to_string()
}

fn empty_feed(cursor: &str) -> serde_json::Value {
    json!({"cursor": cursor, "complete": true, "tokens": [], "subjects": [], "clients": []})
}

#[tokio::test]
async fn a_revoked_token_is_refused_even_when_cached_and_others_still_pass() {
    let issuer = Issuer::start(true).await;
    let verifier = issuer.verifier(issuer.config());
    let now = unix_now();
    let stolen = issuer.token("alice", "web", now - 10, "stolen");
    let other = issuer.token("alice", "web", now - 10, "kept");
    issuer.answer(200, empty_feed("e.1"));
    assert_eq!(
        verifier.poll_revocations_now().await.ok(),
        Some(FeedPoll::Complete)
    );
    verifier.verify(&stolen).await.unwrap();
    verifier.verify(&stolen).await.unwrap();
    assert_eq!(verifier.inner.counters.cache_hits(), 1, "in the cache");

    issuer.answer(
        200,
        json!({"cursor": "e.2", "complete": false,
               "tokens": [{"jti": "stolen", "until": now + 960}]}),
    );
    assert_eq!(
        verifier.poll_revocations_now().await.ok(),
        Some(FeedPoll::Delta)
    );
    assert_eq!(verifier.verify(&stolen).await, Err(VerifyError::Revoked));
    assert_eq!(
        verifier.inner.counters.cache_hits(),
        2,
        "answered by the cache, refused"
    );
    assert_eq!(
        verifier.verify(&other).await.map(|c| c.jti),
        Ok("kept".into())
    );
    assert_eq!(VerifyError::Revoked.name(), "revoked");
    assert_eq!(
        issuer.feed_requests(),
        ["/revocations", "/revocations?since=e.1"]
    );

    // A revoked token verified for the first time is refused and not remembered.
    let uncached = issuer.verifier(issuer.config());
    issuer.answer(
        200,
        json!({"cursor": "e.2", "complete": true,
               "tokens": [{"jti": "stolen", "until": now + 960}]}),
    );
    uncached.poll_revocations_now().await.unwrap();
    assert_eq!(uncached.verify(&stolen).await, Err(VerifyError::Revoked));
    assert_eq!(uncached.verify(&stolen).await, Err(VerifyError::Revoked));
    assert_eq!(uncached.inner.counters.cache_hits(), 0);
}

#[tokio::test]
async fn user_and_client_cut_offs_refuse_only_tokens_issued_before_them() {
    let issuer = Issuer::start(true).await;
    let verifier = issuer.verifier(issuer.config());
    let now = unix_now();
    issuer.answer(
        200,
        json!({"cursor": "e.7", "complete": true,
               "subjects": [{"sub_sha256": sha("alice"), "not_before": now - 100, "until": now + 1200}],
               "clients": [{"client_id_sha256": sha("batch"), "not_before": now - 100, "until": now + 1200}]}),
    );
    verifier.poll_revocations_now().await.unwrap();
    let verify = |sub: &str, client: &str, iat: u64| {
        let token = issuer.token(sub, client, iat, "j");
        let verifier = verifier.clone();
        async move { verifier.verify(&token).await.map(|claims| claims.sub) }
    };
    assert_eq!(
        verify("alice", "web", now - 101).await,
        Err(VerifyError::Revoked)
    );
    assert_eq!(verify("alice", "web", now - 100).await, Ok("alice".into()));
    assert_eq!(
        verify("bob", "batch", now - 101).await,
        Err(VerifyError::Revoked)
    );
    assert_eq!(verify("bob", "batch", now - 50).await, Ok("bob".into()));
    assert_eq!(
        verify("bob", "web", now - 500).await,
        Ok("bob".into()),
        "another user"
    );
}

#[tokio::test]
async fn not_modified_keeps_the_list_and_a_complete_answer_replaces_it() {
    let issuer = Issuer::start(true).await;
    let verifier = issuer.verifier(issuer.config());
    let now = unix_now();
    let token = issuer.token("alice", "web", now - 10, "t1");
    issuer.answer(
        200,
        json!({"cursor": "e.1", "complete": true, "tokens": [{"jti": "t1", "until": now + 900}]}),
    );
    verifier.poll_revocations_now().await.unwrap();
    issuer.answer(304, json!({}));
    assert_eq!(
        verifier.poll_revocations_now().await.ok(),
        Some(FeedPoll::NotModified)
    );
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::Revoked));
    assert_eq!(verifier.state().revocation_entries, 1);

    // Another store (a new epoch): the whole set, which no longer lists t1.
    issuer.answer(200, empty_feed("f.1"));
    assert_eq!(
        verifier.poll_revocations_now().await.ok(),
        Some(FeedPoll::Complete)
    );
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(
        issuer.feed_requests(),
        [
            "/revocations",
            "/revocations?since=e.1",
            "/revocations?since=e.1"
        ]
    );
    assert_eq!(
        issuer.metadata_requests.load(Ordering::SeqCst),
        1,
        "found once"
    );
}

#[tokio::test]
async fn readiness_waits_for_the_first_complete_list_and_a_delta_cannot_be_the_first() {
    let issuer = Issuer::start(true).await;
    let verifier = issuer.verifier(issuer.config());
    assert_eq!(
        verifier.readiness(),
        Readiness::Ready,
        "not polled: nothing to wait for"
    );
    assert!(
        verifier.poll_revocations_now().await.is_err(),
        "the feed answers 503"
    );
    assert_eq!(verifier.readiness(), Readiness::RevocationsNotFetched);
    issuer.answer(200, json!({"cursor": "e.1", "complete": false}));
    assert!(matches!(
        verifier.poll_revocations_now().await,
        Err(FetchError::DeltaWithoutBase { .. })
    ));
    assert_eq!(verifier.readiness(), Readiness::RevocationsNotFetched);
    issuer.answer(200, empty_feed("e.1"));
    verifier.poll_revocations_now().await.unwrap();
    assert_eq!(verifier.readiness(), Readiness::Ready);

    // Started for real: not ready until the keys and the first list are in.
    let mut config = issuer.config();
    config.revocation_poll = Duration::from_millis(100);
    issuer.answer(503, json!({}));
    let started = Verifier::start(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while started.readiness() != Readiness::RevocationsNotFetched {
        assert!(Instant::now() < deadline, "{:?}", started.readiness());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    issuer.answer(200, empty_feed("e.1"));
    while started.readiness() != Readiness::Ready {
        assert!(Instant::now() < deadline, "{:?}", started.readiness());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_unreachable_feed_keeps_serving_then_goes_stale_and_fail_closed_refuses() {
    let issuer = Issuer::start(true).await;
    let mut config = issuer.config();
    config.revocation_max_stale = Duration::from_secs(1);
    let open = issuer.verifier(config.clone());
    config.revocation_fail_closed = true;
    let closed = issuer.verifier(config);
    let token = issuer.token("alice", "web", unix_now() - 10, "j");

    assert!(closed.poll_revocations_now().await.is_err());
    assert_eq!(
        closed.verify(&token).await,
        Err(VerifyError::RevocationsUnavailable),
        "failing closed, no list yet"
    );
    issuer.answer(200, empty_feed("e.1"));
    open.poll_revocations_now().await.unwrap();
    closed.poll_revocations_now().await.unwrap();
    assert!(closed.verify(&token).await.is_ok());

    issuer.answer(503, json!({}));
    assert!(open.poll_revocations_now().await.is_err());
    assert!(
        open.verify(&token).await.is_ok(),
        "the list held still serves"
    );
    assert_eq!(open.readiness(), Readiness::Ready);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open.readiness() == Readiness::Ready {
        assert!(Instant::now() < deadline, "never stale");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Readiness::ReadyWithStaleRevocations { age } = open.readiness() else {
        panic!("{:?}", open.readiness());
    };
    assert!(age > Duration::from_secs(1), "{age:?}");
    assert!(open.verify(&token).await.is_ok(), "fail-open by default");
    // Failing closed, a stale list makes the verifier unready (failing open, it stays ready).
    // `closed` last heard from the feed a little after `open` (its poll came second; on a
    // loaded machine, many milliseconds later), so it goes stale on its own clock.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(closed.readiness(), Readiness::RevocationsStale { .. }) {
        assert!(Instant::now() < deadline, "{:?}", closed.readiness());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        closed.verify(&token).await,
        Err(VerifyError::RevocationsUnavailable),
        "failing closed, the cached verdict included"
    );

    issuer.answer(304, json!({}));
    closed.poll_revocations_now().await.unwrap();
    assert!(closed.verify(&token).await.is_ok(), "a 304 is an answer");
    assert_eq!(closed.readiness(), Readiness::Ready);
}

#[tokio::test]
async fn without_the_metadata_member_or_with_poll_zero_the_feed_is_off() {
    let issuer = Issuer::start(false).await;
    let verifier = issuer.verifier(issuer.config());
    assert_eq!(
        verifier.poll_revocations_now().await.ok(),
        Some(FeedPoll::Off)
    );
    assert_eq!(verifier.readiness(), Readiness::Ready);
    assert!(issuer.feed_requests().is_empty());

    let mut config = issuer.config();
    config.revocation_poll = Duration::ZERO;
    config.revocation_fail_closed = true;
    let off = Verifier::start(config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while off.readiness() != Readiness::Ready {
        assert!(Instant::now() < deadline, "{:?}", off.readiness());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let token = issuer.token("alice", "web", unix_now() - 10, "j");
    assert!(
        off.verify(&token).await.is_ok(),
        "off: nothing to fail closed on"
    );
    assert_eq!(
        issuer.metadata_requests.load(Ordering::SeqCst),
        2,
        "keys only"
    );
}

#[cfg(feature = "prometheus")]
#[tokio::test]
async fn polls_are_counted_and_the_list_size_and_age_exported() {
    let issuer = Issuer::start(true).await;
    let verifier = issuer.verifier(issuer.config());
    let registry = prometheus::Registry::new();
    verifier.register_metrics(&registry).unwrap();
    let before = crate::verifier::metrics::collector::render_text(&registry);
    assert!(
        before.contains("oauth2_jwt_verifier_revocation_feed_age_seconds -1"),
        "{before}"
    );
    assert!(
        before.contains("oauth2_jwt_verifier_revocation_polls_total{result=\"failed\"} 0"),
        "{before}"
    );

    let _ = verifier.poll_revocations_now().await;
    let now = unix_now();
    issuer.answer(
        200,
        json!({"cursor": "e.1", "complete": true,
               "tokens": [{"jti": "a", "until": now + 900}, {"jti": "b", "until": now + 900}]}),
    );
    verifier.poll_revocations_now().await.unwrap();
    issuer.answer(304, json!({}));
    verifier.poll_revocations_now().await.unwrap();

    let after = crate::verifier::metrics::collector::render_text(&registry);
    for line in [
        "oauth2_jwt_verifier_revocation_polls_total{result=\"failed\"} 1",
        "oauth2_jwt_verifier_revocation_polls_total{result=\"complete\"} 1",
        "oauth2_jwt_verifier_revocation_polls_total{result=\"not_modified\"} 1",
        "oauth2_jwt_verifier_revocation_entries 2",
        "oauth2_jwt_verifier_revocation_feed_age_seconds 0",
    ] {
        assert!(after.contains(line), "{line} in {after}");
    }
}
