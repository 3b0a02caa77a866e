//! The fetching verifier against a JWKS server on loopback: freshness from `Cache-Control`,
//! the unknown-kid cooldown, stale keys, and keys given instead of fetched.

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;
use url::Url;

/// An RSA public key (RFC 7517 appendix A.1) published under the kid `good`.
const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"good","use":"sig","alg":"RS256","e":"AQAB","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}]}"#;

/// A JWKS endpoint on loopback that counts requests and answers what `reply` holds: a
/// status, a `Cache-Control` value and a body. Each answer waits `delay`, so that
/// concurrent callers overlap.
struct KeyServer {
    url: Url,
    requests: Arc<AtomicUsize>,
    reply: Arc<Mutex<(u16, &'static str, &'static str)>>,
}

impl KeyServer {
    async fn start(delay: Duration) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let reply = Arc::new(Mutex::new((200, "public, max-age=300", JWKS)));
        let (counted, replying) = (requests.clone(), reply.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (counted, replying) = (counted.clone(), replying.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let (status, cache_control, body) = *replying.lock().unwrap();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncache-control: {cache_control}\r\n\
                         content-type: application/json\r\ncontent-length: {}\r\n\
                         connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            url: url.parse().unwrap(),
            requests,
            reply,
        }
    }

    fn config(&self) -> VerifierConfig {
        let mut config = VerifierConfig::new("http://127.0.0.1:9".parse().unwrap(), "api");
        config.jwks_url = Some(self.url.clone());
        config
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn token_naming(kid: &str) -> String {
    let header =
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}"}}"#));
    format!("{header}.e30.c2ln")
}

#[tokio::test]
async fn cache_control_max_age_sets_freshness_within_the_floor_and_ceiling() {
    let server = KeyServer::start(Duration::ZERO).await;
    let mut config = server.config();
    config.min_refresh = Duration::from_secs(5);
    config.max_refresh = Duration::from_secs(60);
    let verifier = Verifier::new(config).unwrap();
    verifier.refresh_now().await.unwrap();
    assert_eq!(
        verifier.state().fresh_for,
        Duration::from_secs(60),
        "ceiling"
    );
    *server.reply.lock().unwrap() = (200, "max-age=2", JWKS);
    verifier.refresh_now().await.unwrap();
    assert_eq!(verifier.state().fresh_for, Duration::from_secs(5), "floor");
    *server.reply.lock().unwrap() = (200, "public, max-age=17", JWKS);
    verifier.refresh_now().await.unwrap();
    let state = verifier.state();
    assert_eq!(state.fresh_for, Duration::from_secs(17));
    assert_eq!(
        (state.n_keys, state.fetches, state.fetch_failures),
        (1, 3, 0)
    );
}

#[tokio::test]
async fn an_unknown_kid_causes_one_shared_fetch_per_cooldown() {
    let server = KeyServer::start(Duration::from_millis(200)).await;
    let mut config = server.config();
    config.unknown_kid_cooldown = Duration::from_millis(1500);
    let verifier = Verifier::new(config).unwrap();
    verifier.refresh_now().await.unwrap();
    assert_eq!(server.requests(), 1);

    // Wait out the cooldown that the first fetch started.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let token = token_naming("rotated-in");
    let verifications: Vec<_> = (0..16)
        .map(|_| {
            let (verifier, token) = (verifier.clone(), token.clone());
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for verification in verifications {
        assert_eq!(verification.await.unwrap(), Err(VerifyError::UnknownKid));
    }
    assert_eq!(server.requests(), 2, "16 concurrent callers, one fetch");
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKid));
    assert_eq!(server.requests(), 2, "none within the cooldown");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let _ = verifier.verify(&token).await;
    assert_eq!(server.requests(), 3, "one again after the cooldown");
}

/// A caller hanging up during an unknown-`kid` fetch does not cancel it: the fetch completes
/// (and installs what the issuer now publishes) instead of holding the cooldown with nothing
/// fetched, which would keep a newly published key unknown for the whole cooldown.
#[tokio::test]
async fn an_unknown_kid_fetch_completes_when_its_caller_goes_away() {
    let server = KeyServer::start(Duration::from_millis(300)).await;
    let mut config = server.config();
    config.unknown_kid_cooldown = Duration::from_millis(100);
    let verifier = Verifier::new(config).unwrap();
    verifier.refresh_now().await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let gone = tokio::time::timeout(
        Duration::from_millis(50),
        verifier.verify(&token_naming("rotated-in")),
    )
    .await;
    assert!(
        gone.is_err(),
        "the caller went away before the fetch answered"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while verifier.state().fetches < 2 {
        assert!(
            Instant::now() < deadline,
            "the abandoned fetch never completed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.requests(), 2);
    assert_eq!(verifier.state().fetch_failures, 0);
}

#[tokio::test]
async fn the_keys_held_keep_serving_while_the_jwks_endpoint_fails() {
    let server = KeyServer::start(Duration::ZERO).await;
    let verifier = Verifier::new(server.config()).unwrap();
    verifier.refresh_now().await.unwrap();
    *server.reply.lock().unwrap() = (503, "no-store", "{}");
    assert!(verifier.refresh_now().await.is_err());
    *server.reply.lock().unwrap() = (200, "max-age=60", "not json");
    assert!(verifier.refresh_now().await.is_err());
    let state = verifier.state();
    assert_eq!(
        (state.n_keys, state.fetches, state.fetch_failures),
        (1, 3, 2)
    );
    assert!(verifier.is_ready());
    assert_eq!(
        verifier.verify(&token_naming("good")).await,
        Err(VerifyError::BadSignature),
        "the stale key is still used: the kid is known, the signature checked"
    );
}

#[tokio::test]
async fn keys_stale_past_max_stale_are_refused_with_503_until_a_fetch_succeeds() {
    let server = KeyServer::start(Duration::ZERO).await;
    let mut config = server.config();
    // Fresh for no time at all, so stale at once; usable for a second more.
    config.min_refresh = Duration::ZERO;
    config.max_refresh = Duration::ZERO;
    config.max_stale = Some(Duration::from_secs(1));
    config.unknown_kid_cooldown = Duration::from_secs(3600);
    let verifier = Verifier::new(config).unwrap();
    assert_eq!(verifier.readiness(), Readiness::NotFetched);
    verifier.refresh_now().await.unwrap();
    *server.reply.lock().unwrap() = (503, "no-store", "{}");
    assert!(verifier.refresh_now().await.is_err(), "the issuer is down");

    // Within the bound: stale keys still verify (the kid is known, the signature checked).
    assert_eq!(verifier.readiness(), Readiness::Ready);
    assert_eq!(
        verifier.verify(&token_naming("good")).await,
        Err(VerifyError::BadSignature)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while verifier.readiness() == Readiness::Ready {
        assert!(Instant::now() < deadline, "the keys never became too stale");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Readiness::TooStale { age } = verifier.readiness() else {
        panic!("expected TooStale, got {:?}", verifier.readiness());
    };
    assert!(age >= Duration::from_secs(1), "{age:?}");
    assert_eq!(
        verifier.verify(&token_naming("good")).await,
        Err(VerifyError::KeysUnavailable),
        "past the bound the keys held are not trusted"
    );
    assert_eq!(VerifyError::KeysUnavailable.name(), "keys_unavailable");

    *server.reply.lock().unwrap() = (200, "max-age=60", JWKS);
    verifier.refresh_now().await.unwrap();
    assert_eq!(verifier.readiness(), Readiness::Ready);
    assert_eq!(
        verifier.verify(&token_naming("good")).await,
        Err(VerifyError::BadSignature),
        "a successful fetch restores verification"
    );
}

#[tokio::test]
async fn without_a_bound_or_with_given_keys_stale_keys_stay_in_use() {
    let server = KeyServer::start(Duration::ZERO).await;
    let mut config = server.config();
    config.min_refresh = Duration::ZERO;
    config.max_refresh = Duration::ZERO;
    config.max_stale = None;
    let unbounded = Verifier::new(config.clone()).unwrap();
    unbounded.refresh_now().await.unwrap();
    assert_eq!(unbounded.readiness(), Readiness::Ready);

    // With a bound of zero, fetched keys that are fresh for no time are too stale at once…
    config.max_stale = Some(Duration::ZERO);
    let bounded = Verifier::new(config.clone()).unwrap();
    bounded.refresh_now().await.unwrap();
    assert!(matches!(bounded.readiness(), Readiness::TooStale { .. }));
    // …but keys the service gave have no freshness to outlive.
    let given = KeySet::from_jwks(JWKS.as_bytes(), Duration::ZERO).unwrap();
    let offline = Verifier::with_keys(config, given).unwrap();
    assert_eq!(offline.readiness(), Readiness::Ready);
    assert_eq!(
        offline.verify(&token_naming("good")).await,
        Err(VerifyError::BadSignature)
    );
}

#[tokio::test]
async fn a_key_removed_from_the_jwks_is_dropped_at_the_next_fetch() {
    let server = KeyServer::start(Duration::ZERO).await;
    let verifier = Verifier::new(server.config()).unwrap();
    verifier.refresh_now().await.unwrap();
    *server.reply.lock().unwrap() = (200, "max-age=60", r#"{"keys":[]}"#);
    verifier.refresh_now().await.unwrap();
    assert_eq!(verifier.state().n_keys, 0);
}

#[tokio::test]
async fn a_verifier_with_given_keys_is_ready_and_stays_offline() {
    // The issuer is a closed port: any fetch would fail and be counted.
    let mut config = VerifierConfig::new("http://127.0.0.1:9".parse().unwrap(), "api");
    config.unknown_kid_cooldown = Duration::from_secs(3600);
    let verifier = Verifier::with_keys(config, KeySet::empty()).unwrap();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"at+jwt","kid":"nobody"}"#);
    let token = format!("{header}.e30.c2ln");

    assert!(verifier.is_ready());
    assert_eq!(verifier.verify(&token).await, Err(VerifyError::UnknownKid));
    assert_eq!(verifier.state().fetches, 0);
}

mod adoption;
mod claims;
mod issuer;

/// Keys fetched over plain http can be swapped on the path, and whoever swaps them signs any
/// token (RFC 8725 §3.10's concern, RFC 9700 §4.1): such URLs are refused unless loopback or
/// allowed, wherever they come from (configured or discovered).
#[tokio::test]
async fn plain_http_off_loopback_is_refused_unless_allowed() {
    let remote: Url = "http://keys.invalid/jwks.json".parse().unwrap();
    let mut config = VerifierConfig::new("https://issuer.invalid".parse().unwrap(), "api");
    config.jwks_url = Some(remote.clone());
    let verifier = Verifier::new(config.clone()).unwrap();
    assert!(matches!(
        verifier.refresh_now().await,
        Err(FetchError::Insecure { url }) if url == remote
    ));
    let plain_issuer = VerifierConfig::new("http://issuer.invalid".parse().unwrap(), "api");
    assert!(matches!(
        Verifier::new(plain_issuer).unwrap().refresh_now().await,
        Err(FetchError::Insecure { .. })
    ));

    config.allow_http = true;
    let allowed = Verifier::new(config).unwrap().refresh_now().await;
    assert!(
        matches!(allowed, Err(FetchError::Http { .. })),
        "allowed, it is tried (and fails to resolve): {allowed:?}"
    );

    let loopback = KeyServer::start(Duration::ZERO).await;
    let verifier = Verifier::new(loopback.config()).unwrap();
    verifier.refresh_now().await.unwrap();

    // The builder says so at start, naming the URL, rather than leaving the service unready.
    let built = VerifierConfig::builder("http://issuer.invalid".parse().unwrap(), "api").build();
    assert!(
        matches!(built, Err(ConfigError::PlainHttp(url)) if url.as_str() == "http://issuer.invalid/")
    );
    let built = VerifierConfig::builder("https://issuer.invalid".parse().unwrap(), "api")
        .jwks_url(remote)
        .build();
    assert!(matches!(built, Err(ConfigError::PlainHttp(_))));
    VerifierConfig::builder("http://issuer.invalid".parse().unwrap(), "api")
        .allow_http(true)
        .build()
        .unwrap();
    VerifierConfig::builder("http://localhost:8000".parse().unwrap(), "api")
        .build()
        .unwrap();
}
