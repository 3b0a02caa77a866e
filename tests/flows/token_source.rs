//! The `oauth2-token-source` library against the real auth-server: a service's tokens through
//! the client_credentials grant (RFC 6749 §4.4), counted by the server's own metrics.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2_token_source::middleware::BearerMiddleware;
use oauth2_token_source::{
    AccessToken, ClientSecret, Config, Endpoint, Error, TokenRequest, TokenSource,
};
use system_tests::{claims_of, header_of, metric_sample, TestAuth, TestResource};

const SECRET: &str = "orders-secret-0123456789-0123456789";

async fn server_with_client(adjust: impl FnOnce(&mut auth_server::Settings)) -> TestAuth {
    let auth = TestAuth::spawn_with(adjust).await;
    auth.add_client(
        "orders",
        SECRET,
        &["client_credentials"],
        "items:read items:write",
        &[],
    )
    .await;
    auth
}

/// A source discovering the token endpoint from the server's RFC 8414 metadata. These tests
/// invalidate tokens fetched moments before, so the minimum interval between a token's fetch
/// and its invalidation is off.
fn source(auth: &TestAuth) -> TokenSource {
    let config = Config::builder(
        Endpoint::Issuer(auth.url.parse().unwrap()),
        "orders",
        ClientSecret::new(SECRET),
    )
    .timeout(Duration::from_secs(5))
    .min_invalidate_interval(Duration::ZERO)
    .build();
    TokenSource::new(config).unwrap()
}

async fn issued(auth: &TestAuth) -> f64 {
    let text = auth.metrics().await;
    metric_sample(
        &text,
        "auth_server_tokens_issued_total",
        &[("grant_type", "client_credentials")],
    )
    .unwrap_or(0.0)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn exp(token: &AccessToken) -> f64 {
    claims_of(token.secret())["exp"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_callers_at_once_make_one_token_request_rfc6749_4_4() {
    let auth = server_with_client(|_| {}).await;
    let source = source(&auth);
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let callers: Vec<_> = (0..100)
        .map(|_| {
            let (source, barrier) = (source.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                source.token().await.unwrap()
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for caller in callers {
        tokens.push(caller.await.unwrap());
    }
    assert!(tokens.iter().all(|token| *token == tokens[0]));
    assert_eq!(claims_of(tokens[0].secret())["client_id"], "orders");
    assert_eq!(
        issued(&auth).await,
        1.0,
        "one token request for 100 callers"
    );
}

#[tokio::test]
async fn the_token_is_replaced_before_its_exp_and_never_served_expired_rfc6749_5_1() {
    // The shortest lifetime the server allows is 1 s; 3 s leaves room for the default margin
    // and skew, cut down to the lifetime.
    let auth = server_with_client(|settings| settings.access_token_ttl = 3).await;
    let source = source(&auth);
    let mut seen: Vec<AccessToken> = Vec::new();
    while seen.len() < 3 {
        let token = source.token().await.unwrap();
        let at = now();
        assert!(
            at < exp(&token),
            "served {at} at or after exp {}",
            exp(&token)
        );
        if seen.last() != Some(&token) {
            if let Some(old) = seen.last() {
                assert!(
                    at < exp(old),
                    "replaced at {at}, after the old exp {}",
                    exp(old)
                );
            }
            seen.push(token);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_401_invalidate_fetches_one_new_token_rfc6750_3_1() {
    let auth = server_with_client(|_| {}).await;
    let source = source(&auth);
    let old = source.token().await.unwrap();
    // A burst of callers whose API calls all answered 401 for the old token.
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let (source, old) = (source.clone(), old.clone());
            tokio::spawn(async move {
                source.invalidate(&old);
                source.token().await.unwrap()
            })
        })
        .collect();
    let mut fresh = Vec::new();
    for caller in burst {
        fresh.push(caller.await.unwrap());
    }
    assert!(fresh
        .iter()
        .all(|token| *token == fresh[0] && *token != old));
    assert_eq!(issued(&auth).await, 2.0);
}

#[tokio::test]
async fn the_cached_token_outlives_an_auth_server_restart() {
    let mut auth = server_with_client(|_| {}).await;
    let source = source(&auth);
    let before = source.token().await.unwrap();

    auth.stop().await;
    assert_eq!(
        source.token().await.unwrap(),
        before,
        "served from the cache"
    );
    let write = TokenRequest::new().scope("items:write");
    let error = source.token_for(&write).await.unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");

    auth.start_again().await;
    let written = source.token_for(&write).await.unwrap();
    assert_eq!(claims_of(written.secret())["scope"], "items:write");
    assert_eq!(source.token().await.unwrap(), before);
    assert!(source.invalidate(&before));
    let after = source.token().await.unwrap();
    assert_ne!(after, before);
    assert_eq!(
        header_of(after.secret())["kid"],
        header_of(before.secret())["kid"],
        "the same keys after the restart"
    );
    assert_eq!(issued(&auth).await, 2.0, "counted since the restart");
}

#[tokio::test]
async fn the_middleware_replaces_a_revoked_token_without_the_caller_seeing_a_401_rfc7009() {
    let auth = server_with_client(|_| {}).await;
    let resource = TestResource::spawn_configured(&auth.url, true, |settings| {
        settings.revocation_poll = 1;
    })
    .await;
    let source = source(&auth);
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(BearerMiddleware::new(
            source.clone(),
            resource.url("/").parse().unwrap(),
        ))
        .build();
    let items = resource.url("/items");
    assert_eq!(http.get(&items).send().await.unwrap().status(), 200);
    let revoked = source.token().await.unwrap();
    let revocation = auth
        .http
        .post(auth.url("/revoke"))
        .basic_auth("orders", Some(SECRET))
        .form(&[("token", revoked.secret())])
        .send()
        .await
        .unwrap();
    assert_eq!(revocation.status(), 200);

    // Once the revocation reaches the resource server (its feed poll), it answers 401 for the
    // old token; the middleware drops it and sends the request again with a new one.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while issued(&auth).await < 2.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the revocation never took effect"
        );
        assert_eq!(http.get(&items).send().await.unwrap().status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(source.token().await.unwrap(), revoked);
    assert_eq!(http.get(&items).send().await.unwrap().status(), 200);
    let refused = resource.get("/items", revoked.secret()).await;
    assert_eq!(refused.status(), 401);
}
