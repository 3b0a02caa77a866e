//! Malformed `Authorization` headers at the resource server, each answered with an RFC 6750
//! §3 challenge.

use super::*;

/// `GET /users/me` with `authorization` as the raw header value.
async fn get_me_with(
    api: &TestResource,
    authorization: &'static [u8],
) -> system_tests::reqwest::Response {
    api.http
        .get(api.url("/users/me"))
        .header(
            AUTHORIZATION,
            HeaderValue::from_bytes(authorization).unwrap(),
        )
        .send()
        .await
        .unwrap()
}

/// Each of `authorizations`, sent as the raw `Authorization` value, gets a 4xx and a `Bearer`
/// challenge.
async fn assert_bearer_challenges(api: &TestResource, authorizations: &[&'static [u8]]) {
    for &authorization in authorizations {
        let response = get_me_with(api, authorization).await;
        let why = format!("{:?}", String::from_utf8_lossy(authorization));
        assert!(
            response.status().is_client_error(),
            "{why}: status {}",
            response.status()
        );
        assert!(
            challenge(&response).starts_with("Bearer"),
            "{why}: challenge {:?}",
            challenge(&response)
        );
    }
}

/// RFC 6750 §3: credentials of another scheme get a 4xx and a `Bearer` challenge, so that the
/// client learns which scheme the resource takes.
#[tokio::test]
async fn basic_credentials_at_the_resource_server_get_a_bearer_challenge_rfc6750_3() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;

    assert_bearer_challenges(
        &api,
        &[
            b"Basic xyz",
            b"Basic YWxpY2U6c2VjcmV0",
            b"Token abc",
            b"xyz",
        ],
    )
    .await;
}

/// RFC 6750 §3: `Bearer` with no token gets a 4xx and a `Bearer` challenge.
#[tokio::test]
async fn empty_bearer_token_gets_a_bearer_challenge_rfc6750_3() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;

    assert_bearer_challenges(&api, &[b"Bearer", b"Bearer ", b"Bearer    ", b"bearer"]).await;
}

/// RFC 6750 §3.1: a request with no authentication at all gets 401 and a bare challenge with no
/// error code ("the resource server SHOULD NOT include an error code").
#[tokio::test]
async fn missing_authorization_is_401_with_a_bare_bearer_challenge_rfc6750_3_1() {
    let auth = TestAuth::spawn().await;
    let api = TestResource::spawn(&auth).await;

    let response = api.http.get(api.url("/users/me")).send().await.unwrap();

    assert_eq!(response.status(), 401);
    let www_authenticate = challenge(&response);
    assert_eq!(www_authenticate, r#"Bearer realm="api""#);
    assert!(!www_authenticate.contains("error="));
}
