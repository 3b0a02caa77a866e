//! The resource server's side of the revocation feed, over HTTP: an issuer on loopback (its
//! metadata naming a feed, its JWKS, and a feed answering what the test says) and the real
//! resource server. Readiness waits for the first list, a token listed later is refused with
//! `401 invalid_token` within a poll interval, other tokens still pass, and a feed gone away
//! leaves the list held in use while `/readyz` (still 200) calls it stale. The issuer is played by the
//! test so that the feed's answers, outages included, are chosen exactly.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use system_tests::TestResource;
use test_kit::signer::{unix_now, TestSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The issuer: metadata, JWKS and a feed whose answer (status, body) the test sets.
struct Issuer {
    url: String,
    signer: Arc<TestSigner>,
    feed: Arc<Mutex<(u16, String)>>,
}

impl Issuer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let signer = Arc::new(TestSigner::generate());
        let feed = Arc::new(Mutex::new((503, "{}".to_owned())));
        let metadata = json!({
            "issuer": url, "token_endpoint": format!("{url}/token"),
            "jwks_uri": format!("{url}/jwks.json"),
            "revocation_feed_endpoint": format!("{url}/revocations"),
        })
        .to_string();
        let jwks = signer.jwks("k1");
        let replying = feed.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (metadata, jwks, replying) = (metadata.clone(), jwks.clone(), replying.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&request).into_owned();
                    let target = head.split(' ').nth(1).unwrap_or("");
                    let (status, body) = if target.starts_with("/.well-known/") {
                        (200, metadata)
                    } else if target == "/jwks.json" {
                        (200, jwks)
                    } else if target.starts_with("/revocations") {
                        replying.lock().unwrap().clone()
                    } else {
                        (404, "{}".to_owned())
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                         cache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                });
            }
        });
        Self { url, signer, feed }
    }

    fn answer(&self, status: u16, body: &Value) {
        *self.feed.lock().unwrap() = (status, body.to_string());
    }

    /// A user's token, issued a minute ago.
    fn token(&self, user: &str, jti: &str) -> String {
        let now = unix_now();
        self.signer.sign(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": "k1"}),
            &json!({
                "iss": self.url, "sub": user, "aud": "api", "exp": now + 900, "iat": now - 60,
                "jti": jti, "client_id": "public", "scope": "profile",
                "preferred_username": user,
            }),
        )
    }
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test]
async fn a_token_listed_by_the_feed_is_refused_within_a_poll_interval_and_others_pass() {
    let issuer = Issuer::start().await;
    let api = TestResource::spawn_with(&issuer.url, false, |config| {
        config.revocation_poll = Duration::from_millis(200);
        config.revocation_max_stale = Duration::from_secs(1);
    })
    .await;

    until("/readyz names the missing list", async || {
        let ready = api.http.get(api.url("/readyz")).send().await.unwrap();
        ready.status() == 503
            && ready
                .text()
                .await
                .unwrap()
                .contains("revocation list not fetched yet")
    })
    .await;
    issuer.answer(
        200,
        &json!({"cursor": "e.1", "complete": true, "tokens": [], "subjects": [], "clients": []}),
    );
    system_tests::wait_ready(&api.http, &api.url("/readyz")).await;

    let stolen = issuer.token("alice", "stolen");
    let other = issuer.token("bob", "other");
    assert_eq!(api.get_me(&stolen).await.status(), 200);
    assert_eq!(api.get_me(&other).await.status(), 200);

    issuer.answer(
        200,
        &json!({"cursor": "e.2", "complete": false,
                "tokens": [{"jti": "stolen", "until": unix_now() + 960}]}),
    );
    let took = until("the listed token is refused", async || {
        api.get_me(&stolen).await.status() == 401
    })
    .await;
    assert!(took < Duration::from_secs(2), "took {took:?}");

    let refused = api.get_me(&stolen).await;
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["error_description"], "the token has been revoked");
    assert_eq!(
        api.get_me(&other).await.status(),
        200,
        "another user's token"
    );

    let metrics = api.metrics().await;
    for line in [
        "oauth2_jwt_verifier_revocation_entries 1",
        "oauth2_jwt_verifier_verifications_total{outcome=\"revoked\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(
        metrics.contains("oauth2_jwt_verifier_revocation_feed_age_seconds "),
        "{metrics}"
    );
    assert!(
        !metrics.contains("oauth2_jwt_verifier_revocation_feed_age_seconds -1"),
        "{metrics}"
    );

    // The feed goes away: the list held keeps serving (fail-open), and /readyz stays 200 (every
    // replica is in the same state; taking them all out would stop the API) but says the list is
    // stale.
    issuer.answer(503, &json!({}));
    let took = until("/readyz names the stale list", async || {
        let ready = api.http.get(api.url("/readyz")).send().await.unwrap();
        ready.status() == 200
            && ready
                .text()
                .await
                .unwrap()
                .contains("revocation list stale")
    })
    .await;
    assert!(took >= Duration::from_millis(800), "stale after {took:?}");
    assert_eq!(api.get_me(&other).await.status(), 200);
    assert_eq!(api.get_me(&stolen).await.status(), 401);
}

#[tokio::test]
async fn with_fail_closed_a_stale_list_refuses_every_token_with_503_and_readyz_says_so() {
    let issuer = Issuer::start().await;
    issuer.answer(
        200,
        &json!({"cursor": "e.1", "complete": true, "tokens": [], "subjects": [], "clients": []}),
    );
    let api_fast = TestResource::spawn_with(&issuer.url, true, |config| {
        config.revocation_poll = Duration::from_millis(200);
        config.revocation_max_stale = Duration::from_secs(1);
        config.revocation_fail_closed = true;
    })
    .await;
    let token = issuer.token("alice", "fine");
    assert_eq!(api_fast.get_me(&token).await.status(), 200);

    issuer.answer(503, &json!({}));
    until("the token is refused while the list is stale", async || {
        api_fast.get_me(&token).await.status() == 503
    })
    .await;
    let refused = api_fast.get_me(&token).await;
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let ready = api_fast
        .http
        .get(api_fast.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready
        .text()
        .await
        .unwrap()
        .contains("revocation list stale"));

    // The feed answers again: tokens are judged again.
    issuer.answer(
        200,
        &json!({"cursor": "e.1", "complete": true, "tokens": [], "subjects": [], "clients": []}),
    );
    until("the token is accepted once the list is fresh", async || {
        api_fast.get_me(&token).await.status() == 200
    })
    .await;
}
