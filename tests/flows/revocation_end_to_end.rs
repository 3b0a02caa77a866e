//! Revocation reaches resource servers: the real auth-server (one, or two replicas on Redis),
//! its command line, and a real resource server polling the feed every second. A token the
//! resource server has already verified and cached is refused with `401 invalid_token` (RFC
//! 6750 §3.1) within a poll interval and a few seconds after `POST /revoke` (RFC 7009), `user
//! disable`, `user passwd` or `client remove`, while the tokens of other users stay valid.

use std::time::{Duration, Instant};

use server_plumbing::wire::TokenResponse;
use system_tests::binaries::{binaries, cli, cli_env};
use system_tests::{shared_redis, TestAuth, TestResource};

const WEB: &str = "reach-web";
const WEB_SECRET: &str = "reach-web-secret-0123456789-0123456789";
const SVC: &str = "reach-svc";
const SVC_SECRET: &str = "reach-svc-secret-0123456789-0123456789";
/// The resource server's poll interval, in seconds.
const POLL: u64 = 1;
/// How long a revocation may take to reach it: a poll interval and a few seconds for a loaded
/// test machine.
const REACH: Duration = Duration::from_secs(POLL + 4);

async fn register(auth: &TestAuth, users: &[&str]) {
    for user in users {
        auth.add_user(user, &format!("{user}-pw-1"), "profile items:read")
            .await;
    }
    auth.add_client(
        WEB,
        WEB_SECRET,
        &["password", "refresh_token"],
        "profile items:read",
        &[],
    )
    .await;
    auth.add_client(SVC, SVC_SECRET, &["client_credentials"], "items:read", &[])
        .await;
}

async fn login(auth: &TestAuth, user: &str, password: &str) -> String {
    let response = auth
        .token_basic(
            WEB,
            WEB_SECRET,
            &[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(response.status(), 200, "{user} logs in");
    let tokens: TokenResponse = response.json().await.unwrap();
    tokens.access_token
}

/// `POST /revoke` of `token` by the client it was issued to (RFC 7009 §2.1).
async fn revoke(auth: &TestAuth, token: &str) {
    let form = [
        ("token", token),
        ("client_id", WEB),
        ("client_secret", WEB_SECRET),
    ];
    assert_eq!(auth.revoke(&form).await.status(), 200);
}

/// `auth-server ARGS` with `stdin` on `auth`'s store, as an operator runs it.
async fn operator(auth: &TestAuth, args: &[&str], stdin: &str) {
    let mut env = cli_env(&auth.settings);
    env.push((
        "AUTH_ACCESS_TOKEN_TTL".to_owned(),
        auth.settings.access_token_ttl.to_string(),
    ));
    cli(&binaries().await.auth, &env, args, stdin).await;
}

/// A resource server trusting `auth`, polling its feed every [`POLL`] seconds.
async fn resource_server(auth: &TestAuth) -> TestResource {
    TestResource::spawn_configured(&auth.url, true, |settings| {
        settings.revocation_poll = POLL;
    })
    .await
}

/// `GET /items` with `token` at `api`: its status.
async fn status(api: &TestResource, token: &str) -> u16 {
    api.get("/items", token).await.status().as_u16()
}

/// Waits until `api` refuses `token` with `401 invalid_token`, for at most [`REACH`].
async fn refused_in_reach(api: &TestResource, token: &str, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let response = api.get("/items", token).await;
        if response.status() == 401 {
            let challenge = system_tests::challenge(&response);
            assert!(
                challenge.contains(r#"error="invalid_token""#),
                "{what}: RFC 6750 §3.1: {challenge}"
            );
            return started.elapsed();
        }
        assert_eq!(response.status(), 200, "{what}: still accepted meanwhile");
        assert!(
            started.elapsed() < REACH,
            "{what}: still accepted after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_revocation_reaches_a_resource_server_that_verified_the_token_already() {
    let auth = TestAuth::spawn().await;
    register(&auth, &["ann", "ben", "cat", "dan"]).await;
    let api = resource_server(&auth).await;

    let revoked = login(&auth, "ann", "ann-pw-1").await;
    let ann_other = login(&auth, "ann", "ann-pw-1").await;
    let disabled = login(&auth, "ben", "ben-pw-1").await;
    let new_password = login(&auth, "cat", "cat-pw-1").await;
    let service = auth
        .client_credentials(SVC, SVC_SECRET, "items:read")
        .await
        .access_token;
    let bystander = login(&auth, "dan", "dan-pw-1").await;
    // Verified and cached before any revocation.
    for token in [
        &revoked,
        &ann_other,
        &disabled,
        &new_password,
        &service,
        &bystander,
    ] {
        assert_eq!(status(&api, token).await, 200);
    }

    // RFC 7009: the revoked token only, not another token of the same user.
    revoke(&auth, &revoked).await;
    refused_in_reach(&api, &revoked, "POST /revoke").await;
    assert_eq!(status(&api, &ann_other).await, 200, "another token of ann");

    operator(&auth, &["user", "disable", "ben"], "").await;
    refused_in_reach(&api, &disabled, "user disable").await;

    operator(
        &auth,
        &["user", "passwd", "cat", "--password-stdin"],
        "cat-pw-2\n",
    )
    .await;
    refused_in_reach(&api, &new_password, "user passwd").await;
    let after = login(&auth, "cat", "cat-pw-2").await;
    assert_eq!(
        status(&api, &after).await,
        200,
        "a token issued after the change"
    );

    operator(&auth, &["client", "remove", SVC], "").await;
    refused_in_reach(&api, &service, "client remove").await;

    assert_eq!(status(&api, &bystander).await, 200, "another user's token");
}

#[tokio::test]
async fn a_revocation_at_one_replica_reaches_a_resource_server_polling_another() {
    let namespace = shared_redis("reach");
    let a = TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await;
    let b = a.spawn_replica(|_| {}).await;
    register(&a, &["eve", "fay", "gil"]).await;
    // The resource server polls `a`, the issuer; the revocations are made at `b` and by the
    // command line on the shared store.
    let api = resource_server(&a).await;

    let revoked = login(&a, "eve", "eve-pw-1").await;
    let disabled = login(&b, "fay", "fay-pw-1").await;
    let bystander = login(&b, "gil", "gil-pw-1").await;
    for token in [&revoked, &disabled, &bystander] {
        assert_eq!(status(&api, token).await, 200);
    }

    revoke(&b, &revoked).await;
    refused_in_reach(&api, &revoked, "POST /revoke at the other replica").await;

    operator(&b, &["user", "disable", "fay"], "").await;
    refused_in_reach(&api, &disabled, "user disable on the shared store").await;

    assert_eq!(status(&api, &bystander).await, 200, "another user's token");
}

/// A resource server that reaches the issuer at another address than the issuer it trusts (as
/// in the compose and Kubernetes files: the public `iss`, keys in-cluster) cannot find the feed
/// through the issuer's metadata; `RS_REVOCATION_FEED_URL` names it, and then the resource
/// server is ready and revocations reach it. Without it, it would never be ready.
#[tokio::test]
async fn a_feed_named_by_url_reaches_a_resource_server_that_cannot_read_the_metadata() {
    let public = "http://issuer.invalid";
    let auth = TestAuth::spawn_with(|settings| settings.issuer = public.parse().unwrap()).await;
    register(&auth, &["frank"]).await;
    let (jwks, feed) = (
        format!("{}/.well-known/jwks.json", auth.url),
        format!("{}/revocations", auth.url),
    );
    let api = TestResource::spawn_configured(public, true, |settings| {
        settings.revocation_poll = POLL;
        settings.jwks_url = Some(jwks.parse().unwrap());
        settings.revocation_feed_url = Some(feed.parse().unwrap());
    })
    .await;

    let token = login(&auth, "frank", "frank-pw-1").await;
    assert_eq!(status(&api, &token).await, 200);
    revoke(&auth, &token).await;
    refused_in_reach(&api, &token, "POST /revoke, feed named by URL").await;
}
