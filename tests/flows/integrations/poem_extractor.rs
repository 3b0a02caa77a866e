//! A plain poem service (no OpenAPI) taking `Claims<X>` as an extractor, with the
//! `BearerChallenge` middleware naming its realm: accepted and refused as RFC 6750 says.

use oauth2_jwt_verifier::poem::BearerChallenge;
use oauth2_jwt_verifier::Claims;
use poem::listener::TcpAcceptor;
use poem::{get, handler, EndpointExt, Route, Server};
use serde_json::Value;
use system_tests::{challenge, http_client};

use super::Issuer;

#[derive(serde::Deserialize)]
struct Profile {
    preferred_username: String,
}

#[handler]
fn me(claims: Claims<Profile>) -> String {
    claims.extra.preferred_username.clone()
}

#[handler]
fn write(claims: Claims) -> poem::Result<&'static str> {
    claims.require_scope("items:write")?;
    Ok("written")
}

async fn serve(issuer: &Issuer) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
    let app = Route::new()
        .at("/me", get(me))
        .at("/write", get(write))
        .with(BearerChallenge::default().realm("poem"))
        .data(issuer.verifier.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    url
}

#[tokio::test]
async fn poem_extractor_accepts_the_issuers_token_with_custom_claims_rfc6750_2_1() {
    let issuer = Issuer::start().await;
    let url = serve(&issuer).await;

    let response = http_client()
        .get(format!("{url}/me"))
        .bearer_auth(issuer.reader().await)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "reader");
}

#[tokio::test]
async fn poem_extractor_refuses_forged_and_missing_tokens_and_a_missing_scope_rfc6750_3_1() {
    let issuer = Issuer::start().await;
    let url = serve(&issuer).await;
    let http = http_client();

    for (why, token) in issuer.forged() {
        let response = http
            .get(format!("{url}/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{why}");
        let www_authenticate = challenge(&response);
        assert!(
            www_authenticate.starts_with(r#"Bearer realm="poem", error="invalid_token""#),
            "{why}: {www_authenticate}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{why}");
    }
    let missing = http.get(format!("{url}/me")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(challenge(&missing), r#"Bearer realm="poem""#);
    let scope = http
        .get(format!("{url}/write"))
        .bearer_auth(issuer.reader().await)
        .send()
        .await
        .unwrap();
    assert_eq!(scope.status(), 403);
    let www_authenticate = challenge(&scope);
    assert!(
        www_authenticate.starts_with(r#"Bearer realm="poem", error="insufficient_scope""#)
            && www_authenticate.contains(r#"scope="items:write""#),
        "{www_authenticate}"
    );
}
