//! An axum app behind the tower `BearerLayer` (RFC 6750): custom claims reach the handler,
//! forged and missing tokens get the RFC 6750 §3.1 answers from the layer itself, and a
//! missing scope is 403 whether the layer or the handler asks for it.

use axum::routing::{get, post};
use axum::{Json, Router};
use oauth2_jwt_verifier::tower::BearerLayer;
use oauth2_jwt_verifier::{Claims, MissingScope, Verifier};
use serde_json::{json, Value};
use system_tests::{challenge, http_client};

use super::{Issuer, READ_SCOPE};

/// What this service reads from the payload besides the access-token claims.
#[derive(Clone, serde::Deserialize)]
struct Profile {
    preferred_username: String,
    email: Option<String>,
}

async fn me(claims: Claims<Profile>) -> Json<Value> {
    Json(json!({
        "sub": claims.sub,
        "username": claims.extra.preferred_username,
        "email": claims.extra.email,
    }))
}

async fn write(claims: Claims<Profile>) -> Result<&'static str, MissingScope> {
    claims.require_scope("items:write")?;
    Ok("written")
}

async fn items(claims: Claims) -> String {
    format!("items of {}", claims.sub)
}

/// `/me` and `/write` in the realm `items`; `/items` needs [`READ_SCOPE`] at the layer;
/// `/unguarded` asks for claims with no layer in front.
async fn serve(verifier: &Verifier) -> String {
    let scoped = Router::new()
        .route("/items", get(items))
        .route_layer(BearerLayer::new(verifier.clone()).require_scope(READ_SCOPE));
    let app = Router::new()
        .route("/me", get(me))
        .route("/write", post(write))
        .route_layer(
            BearerLayer::new(verifier.clone())
                .with_extra::<Profile>()
                .realm("items"),
        )
        .merge(scoped)
        .route("/unguarded", get(items));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn get_me(url: &str, token: &str) -> reqwest::Response {
    http_client()
        .get(format!("{url}/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn axum_layer_accepts_the_issuers_token_and_hands_over_custom_claims_rfc6750_2_1() {
    let issuer = Issuer::start().await;
    let url = serve(&issuer.verifier).await;

    let response = get_me(&url, &issuer.reader().await).await;

    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["sub"], "reader");
    assert_eq!(me["username"], "reader");
    assert_eq!(me["email"], "reader@example.com");
    // The scheme name is case-insensitive (RFC 6750 §2.1).
    let token = issuer.reader().await;
    let response = http_client()
        .get(format!("{url}/me"))
        .header("authorization", format!("bEARer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn axum_layer_refuses_each_forged_token_class_as_invalid_token_rfc6750_3_1() {
    let issuer = Issuer::start().await;
    let url = serve(&issuer.verifier).await;
    let control = get_me(&url, &issuer.well_forged()).await;
    assert_eq!(control.status(), 200, "the control forgery is accepted");

    for (why, token) in issuer.forged() {
        let response = get_me(&url, &token).await;
        assert_eq!(response.status(), 401, "{why}");
        let www_authenticate = challenge(&response);
        assert!(
            www_authenticate.starts_with(r#"Bearer realm="items", error="invalid_token""#),
            "{why}: {www_authenticate}"
        );
        assert_eq!(response.headers()["cache-control"], "no-store", "{why}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{why}");
        assert!(body["error_description"].is_string(), "{why}");
    }
}

#[tokio::test]
async fn axum_layer_answers_no_token_with_a_bare_challenge_and_a_malformed_header_with_400_rfc6750_3_1(
) {
    let issuer = Issuer::start().await;
    let url = serve(&issuer.verifier).await;
    let http = http_client();

    for authorization in [None, Some("Basic cmVhZGVyOnB3")] {
        let mut request = http.get(format!("{url}/me"));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{authorization:?}");
        assert_eq!(challenge(&response), r#"Bearer realm="items""#);
    }
    // RFC 6750 §2.1: one b64token after the scheme; two credentials are one too many.
    for authorization in ["Bearer", "Bearer a b", "Bearer a=b"] {
        let response = http
            .get(format!("{url}/me"))
            .header("authorization", authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{authorization}");
        assert!(challenge(&response).contains(r#"error="invalid_request""#));
    }
    let token = issuer.reader().await;
    let response = http
        .get(format!("{url}/me"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "two Authorization headers");
}

#[tokio::test]
async fn axum_missing_scope_is_403_insufficient_scope_from_layer_and_handler_rfc6750_3_1() {
    let issuer = Issuer::start().await;
    let url = serve(&issuer.verifier).await;
    let http = http_client();
    let plain = issuer.token("plain", "").await;
    let reader = issuer.reader().await;

    let refused = http
        .get(format!("{url}/items"))
        .bearer_auth(&plain)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let www_authenticate = challenge(&refused);
    assert!(
        www_authenticate.starts_with(r#"Bearer realm="api", error="insufficient_scope""#)
            && www_authenticate.contains(r#"scope="items:read""#),
        "{www_authenticate}"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    let allowed = http
        .get(format!("{url}/items"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.text().await.unwrap(), "items of reader");

    // The handler's `require_scope(…)?`: the layer names its own realm in the challenge.
    let refused = http
        .post(format!("{url}/write"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let www_authenticate = challenge(&refused);
    assert!(
        www_authenticate.starts_with(r#"Bearer realm="items", error="insufficient_scope""#)
            && www_authenticate.contains(r#"scope="items:write""#),
        "{www_authenticate}"
    );
    assert_eq!(refused.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn axum_route_asking_for_claims_without_the_layer_is_a_500_that_says_so() {
    let issuer = Issuer::start().await;
    let url = serve(&issuer.verifier).await;

    let response = http_client()
        .get(format!("{url}/unguarded"))
        .bearer_auth(issuer.reader().await)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 500);
    assert!(response.text().await.unwrap().contains("BearerLayer"));
}
