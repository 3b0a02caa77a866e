//! The revocation feed (`GET /revocations`): what verifiers poll to refuse revoked tokens. A
//! revocation at `/revoke` and the command line's changes appear in it, incrementally after a
//! cursor, with `304` when nothing changed; it names nobody in the clear; and replicas on one
//! Redis serve the same feed.

use base64::Engine;
use serde_json::Value;
use server_plumbing::wire::TokenResponse;
use system_tests::binaries::{binaries, cli, cli_env};
use system_tests::{claims_of, shared_redis, TestAuth};

const SECRET: &str = "feed-web-secret-0123456789-0123456789";
const USERNAME: &str = "feed-user-alice";
const CLIENT_ID: &str = "feed-web-client";

/// base64url (unpadded) SHA-256 of `name`, computed here apart from the server's code.
fn digest(name: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, name.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// `GET /revocations`, with `since` in the query when given.
async fn fetch(auth: &TestAuth, since: Option<&str>) -> reqwest::Response {
    let mut request = auth.http.get(auth.url("/revocations"));
    if let Some(since) = since {
        request = request.query(&[("since", since)]);
    }
    request.send().await.unwrap()
}

/// A 200 answer: its body as text and as JSON. Checks the headers every 200 carries.
async fn feed(response: reqwest::Response) -> (String, Value) {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(etag, format!("\"{}\"", body["cursor"].as_str().unwrap()));
    (text, body)
}

fn cursor(body: &Value) -> &str {
    body["cursor"].as_str().unwrap()
}

async fn assert_not_modified(auth: &TestAuth, cursor: &str) {
    let by_query = fetch(auth, Some(cursor)).await;
    assert_eq!(by_query.status(), 304, "since={cursor}");
    assert_eq!(by_query.headers()["etag"], format!("\"{cursor}\"").as_str());
    assert!(by_query.text().await.unwrap().is_empty());
    let by_header = auth
        .http
        .get(auth.url("/revocations"))
        .header("If-None-Match", format!("\"{cursor}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 304, "If-None-Match: {cursor}");
}

async fn revoke(auth: &TestAuth, token: &str) {
    let response = auth
        .http
        .post(auth.url("/revoke"))
        .basic_auth(CLIENT_ID, Some(SECRET))
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn login(auth: &TestAuth, password: &str) -> TokenResponse {
    let response = auth
        .token_basic(
            CLIENT_ID,
            SECRET,
            &[
                ("grant_type", "password"),
                ("username", USERNAME),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// `auth-server ARGS` with `stdin` on `auth`'s store, with its access-token lifetime.
async fn run(auth: &TestAuth, args: &[&str], stdin: &str) {
    let mut env = cli_env(&auth.settings);
    env.push((
        "AUTH_ACCESS_TOKEN_TTL".to_owned(),
        auth.settings.access_token_ttl.to_string(),
    ));
    cli(&binaries().await.auth, &env, args, stdin).await;
}

#[tokio::test]
async fn the_feed_lists_revocations_incrementally_and_names_nobody_in_the_clear() {
    let auth = TestAuth::spawn().await;
    let ttl = auth.settings.access_token_ttl;
    auth.add_user(USERNAME, "feed-pw-1", "").await;
    auth.add_client(CLIENT_ID, SECRET, &["password", "refresh_token"], "", &[])
        .await;

    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let metadata: Value = auth
            .http
            .get(auth.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            metadata["revocation_feed_endpoint"],
            auth.url("/revocations"),
            "{path}"
        );
    }

    let (_, empty) = feed(fetch(&auth, None).await).await;
    assert_eq!(empty["complete"], true);
    for list in ["tokens", "subjects", "clients"] {
        assert_eq!(empty[list], serde_json::json!([]), "{list}");
    }
    assert_not_modified(&auth, cursor(&empty)).await;

    // An access token revoked at /revoke: its jti, until it has expired for every verifier.
    let revoked = login(&auth, "feed-pw-1").await;
    let kept = login(&auth, "feed-pw-1").await;
    revoke(&auth, &revoked.access_token).await;
    let claims = claims_of(&revoked.access_token);
    let (_, after_revoke) = feed(fetch(&auth, Some(cursor(&empty))).await).await;
    assert_eq!(after_revoke["complete"], false);
    assert_eq!(
        after_revoke["tokens"],
        serde_json::json!([{
            "jti": claims["jti"],
            "until": claims["exp"].as_u64().unwrap() + 60,
        }])
    );
    assert_eq!(after_revoke["subjects"], serde_json::json!([]));
    assert_not_modified(&auth, cursor(&after_revoke)).await;
    let refresh = kept.refresh_token.clone().unwrap();
    revoke(&auth, &refresh).await;
    assert_not_modified(&auth, cursor(&after_revoke)).await;

    // A new password: the subject's digest, with a cut-off that refuses the tokens issued
    // before it and none issued after.
    run(
        &auth,
        &["user", "passwd", USERNAME, "--password-stdin"],
        "feed-pw-2",
    )
    .await;
    let (_, after_passwd) = feed(fetch(&auth, Some(cursor(&after_revoke))).await).await;
    assert_eq!(after_passwd["complete"], false);
    assert_eq!(after_passwd["tokens"], serde_json::json!([]), "only newer");
    let subjects = after_passwd["subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 1, "{after_passwd}");
    assert_eq!(subjects[0]["sub_sha256"], digest(USERNAME).as_str());
    let not_before = subjects[0]["not_before"].as_u64().unwrap();
    assert_eq!(
        subjects[0]["until"].as_u64().unwrap(),
        not_before + ttl + 300
    );
    let old_iat = claims_of(&kept.access_token)["iat"].as_u64().unwrap();
    assert!(old_iat < not_before, "the earlier token is refused");
    let fresh = login(&auth, "feed-pw-2").await;
    let fresh_iat = claims_of(&fresh.access_token)["iat"].as_u64().unwrap();
    assert!(fresh_iat >= not_before, "a token issued after it is not");

    // The client removed: its digest.
    run(&auth, &["client", "remove", CLIENT_ID], "").await;
    let (_, after_remove) = feed(fetch(&auth, Some(cursor(&after_passwd))).await).await;
    let clients = after_remove["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 1, "{after_remove}");
    assert_eq!(clients[0]["client_id_sha256"], digest(CLIENT_ID).as_str());
    assert!(clients[0]["not_before"].as_u64().unwrap() > fresh_iat);

    // The whole set, for a new holder or any cursor the server cannot continue from.
    let (text, whole) = feed(fetch(&auth, None).await).await;
    assert_eq!(whole["complete"], true);
    assert_eq!(whole["cursor"], after_remove["cursor"]);
    assert_eq!(whole["tokens"], after_revoke["tokens"]);
    assert_eq!(whole["subjects"], after_passwd["subjects"]);
    assert_eq!(whole["clients"], after_remove["clients"]);
    for secret in [
        USERNAME,
        CLIENT_ID,
        SECRET,
        revoked.access_token.as_str(),
        kept.access_token.as_str(),
        refresh.as_str(),
    ] {
        assert!(
            !text.contains(secret),
            "the feed shows {secret:?} in the clear"
        );
    }
    for since in [
        "",
        "garbage",
        "%FF%FE",
        "other-epoch.1",
        "a.b.c",
        "x.99999999999999999999",
    ] {
        let response = auth
            .http
            .get(format!("{}?since={since}", auth.url("/revocations")))
            .send()
            .await
            .unwrap();
        let (same, body) = feed(response).await;
        assert_eq!(body["complete"], true, "since={since}");
        assert_eq!(same, text, "since={since}");
    }
    let ahead = format!("{}.999", cursor(&whole).rsplit_once('.').unwrap().0);
    assert_eq!(
        feed(fetch(&auth, Some(&ahead)).await).await.1["complete"],
        true
    );
    let odd_header = auth
        .http
        .get(auth.url("/revocations"))
        .header("If-None-Match", "*, W/\"x\"")
        .send()
        .await
        .unwrap();
    assert_eq!(feed(odd_header).await.1, whole);
}

/// Replicas share the store, so the feed (and its cursors) are the same at every replica.
#[tokio::test]
async fn replicas_on_one_redis_serve_the_same_feed() {
    let namespace = shared_redis("feed");
    let a = TestAuth::spawn_on_redis(namespace.store_url(), |_| {}).await;
    let b = a.spawn_replica(|_| {}).await;
    a.add_user(USERNAME, "feed-pw-1", "").await;
    a.add_client(CLIENT_ID, SECRET, &["password"], "", &[])
        .await;
    let (_, before) = feed(fetch(&b, None).await).await;

    let tokens = login(&a, "feed-pw-1").await;
    revoke(&b, &tokens.access_token).await;
    let (text_a, at_a) = feed(fetch(&a, None).await).await;
    let (text_b, _) = feed(fetch(&b, None).await).await;
    assert_eq!(text_a, text_b);
    assert_eq!(
        at_a["tokens"][0]["jti"],
        claims_of(&tokens.access_token)["jti"]
    );
    let (_, delta) = feed(fetch(&a, Some(cursor(&before))).await).await;
    assert_eq!(delta["complete"], false);
    assert_eq!(delta["tokens"], at_a["tokens"]);
    assert_not_modified(&b, cursor(&at_a)).await;
    assert_not_modified(&a, cursor(&at_a)).await;
}
