//! Tokens built to be refused. Each negative test forges a token that is valid but for one
//! defect (the server's own signing key, read from its keys directory, signs most of them), and
//! the positive control proves that the same forgery without the defect is accepted: so every
//! refusal below is for the defect the test names, not for some other slip in the forgery.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use system_tests::{challenge, claims_of, TestAuth, TestResource};
use test_kit::signer::{b64url, sign_hs256, signing_input, unix_now, TestSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The clock skew the resource server allows on `exp` and `nbf` (`VerifierConfig::leeway`).
const LEEWAY_SECONDS: u64 = 30;

/// A running auth-server and a resource server trusting it, with the auth-server's signing key.
struct Fixture {
    auth: TestAuth,
    api: TestResource,
    /// The auth-server's active signing key, opened from its store.
    server_key: TestSigner,
    /// The `kid` the JWKS publishes for `server_key`.
    kid: String,
}

impl Fixture {
    async fn start() -> Self {
        let auth = TestAuth::spawn().await;
        let api = TestResource::spawn(&auth).await;
        let server_key = load_server_key(&auth).await;
        let jwks = auth.jwks().await;
        let n = server_key.modulus_b64();
        let kid = jwks["keys"]
            .as_array()
            .expect("jwks has keys")
            .iter()
            .find(|jwk| jwk["n"] == n.as_str())
            .and_then(|jwk| jwk["kid"].as_str())
            .expect("the active key is published in the JWKS")
            .to_owned();
        Self {
            auth,
            api,
            server_key,
            kid,
        }
    }

    /// The header of a genuine access token (RFC 9068 §2.1).
    fn header(&self) -> Value {
        json!({"alg": "RS256", "typ": "at+jwt", "kid": self.kid})
    }

    /// Claims a genuine user token carries (RFC 9068 §2.2), valid for five minutes.
    fn claims(&self) -> Value {
        let now = unix_now();
        json!({
            "iss": self.auth.url,
            "sub": "alice",
            "aud": "api",
            "exp": now + 300,
            "iat": now,
            "jti": format!("forged-{now}"),
            "client_id": "public",
            "scope": "",
            "preferred_username": "alice",
        })
    }

    /// Signs `header` and `claims` with the auth-server's own key.
    fn forge(&self, header: &Value, claims: &Value) -> String {
        self.server_key.sign(header, claims)
    }

    /// `GET /users/me` with `token` must be 401 with `error="invalid_token"` (RFC 6750 §3.1).
    async fn assert_invalid_token(&self, token: &str, why: &str) {
        let response = self.api.get_me(token).await;
        let status = response.status();
        let www_authenticate = challenge(&response);
        let body = response.text().await.unwrap_or_default();
        assert_eq!(
            status, 401,
            "{why}: status (challenge {www_authenticate:?}, body {body})"
        );
        assert!(
            www_authenticate.starts_with("Bearer ")
                && www_authenticate.contains(r#"error="invalid_token""#),
            "{why}: challenge was {www_authenticate:?}"
        );
    }
}

/// The auth-server's active signing key, opened from its store with its key-encryption key as
/// the server does.
async fn load_server_key(auth: &TestAuth) -> TestSigner {
    let kid = auth.active_kid().await;
    TestSigner::from_pkcs8(&auth.private_signing_key(&kid).await)
}

/// A tiny HTTP server on 127.0.0.1:0 that serves `body` to anyone and counts connections.
async fn counting_key_server(body: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

/// The control for every test below: the forgery with nothing wrong is accepted. Were it
/// refused, the negative tests would prove nothing.
#[tokio::test]
async fn forged_token_with_correct_claims_and_the_servers_key_is_accepted_rfc9068_4() {
    let fixture = Fixture::start().await;
    let token = fixture.forge(&fixture.header(), &fixture.claims());

    let response = fixture.api.get_me(&token).await;

    assert_eq!(
        response.status(),
        200,
        "challenge: {}",
        challenge(&response)
    );
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], "alice");
}

/// RFC 8725 §3.1: the algorithm comes from the verifier's allowlist, never from the token, so an
/// unsigned `alg: none` token is refused however `none` is spelled and whatever follows it.
#[tokio::test]
async fn unsigned_alg_none_token_is_invalid_token_rfc8725_3_1() {
    let fixture = Fixture::start().await;
    let claims = fixture.claims();
    let genuine = fixture.forge(&fixture.header(), &claims);
    let genuine_signature = genuine.rsplit('.').next().unwrap();

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": fixture.kid});
        let input = signing_input(&header, &claims);
        fixture
            .assert_invalid_token(&format!("{input}."), &format!("alg {alg}, empty signature"))
            .await;
        fixture
            .assert_invalid_token(
                &format!("{input}.{genuine_signature}"),
                &format!("alg {alg}, stolen signature"),
            )
            .await;
    }
}

/// RFC 8725 §3.1 and §3.2: a verifier that let the token pick HS256 would check the MAC with
/// the RSA public key as the HMAC secret, a key everyone has. Each form that key is published
/// in is tried as the secret.
#[tokio::test]
async fn hs256_token_keyed_with_the_servers_public_key_is_invalid_token_rfc8725_3_1() {
    let fixture = Fixture::start().await;
    let claims = fixture.claims();
    let jwks = fixture.auth.jwks().await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|jwk| jwk["kid"] == fixture.kid.as_str())
        .unwrap()
        .clone();
    let modulus = fixture.server_key.modulus();
    let secrets: [(&str, Vec<u8>); 4] = [
        ("modulus bytes", modulus),
        ("JWK JSON", jwk.to_string().into_bytes()),
        ("JWKS JSON", jwks.to_string().into_bytes()),
        ("base64url n", fixture.server_key.modulus_b64().into_bytes()),
    ];

    for (name, secret) in &secrets {
        for typ in ["at+jwt", "JWT"] {
            let header = json!({"alg": "HS256", "typ": typ, "kid": fixture.kid});
            let token = sign_hs256(&header, &claims, secret);
            fixture
                .assert_invalid_token(&token, &format!("HS256 keyed with the {name}, typ {typ}"))
                .await;
        }
    }
}

/// RFC 6750 §3.1: a signature by any key but the issuer's fails, even under the issuer's `kid`.
#[tokio::test]
async fn rs256_token_signed_by_a_foreign_key_under_the_servers_kid_is_invalid_token_rfc6750_3_1() {
    let fixture = Fixture::start().await;
    let stranger = TestSigner::generate();

    let token = stranger.sign(&fixture.header(), &fixture.claims());

    fixture
        .assert_invalid_token(&token, "foreign key, server's kid")
        .await;
}

/// RFC 6750 §3.1: a `kid` the issuer does not publish (or none at all) finds no key, even when
/// the signature is the issuer's own.
#[tokio::test]
async fn token_naming_an_unknown_kid_or_none_is_invalid_token_rfc6750_3_1() {
    let fixture = Fixture::start().await;
    let claims = fixture.claims();

    let unknown = json!({"alg": "RS256", "typ": "at+jwt", "kid": "no-such-key"});
    fixture
        .assert_invalid_token(&fixture.forge(&unknown, &claims), "unknown kid")
        .await;
    let foreign_kid = json!(TestSigner::generate().thumbprint());
    let foreign = json!({"alg": "RS256", "typ": "at+jwt", "kid": foreign_kid});
    fixture
        .assert_invalid_token(
            &fixture.forge(&foreign, &claims),
            "a foreign key's thumbprint as kid",
        )
        .await;
    let without_kid = json!({"alg": "RS256", "typ": "at+jwt"});
    fixture
        .assert_invalid_token(&fixture.forge(&without_kid, &claims), "no kid")
        .await;
}

/// RFC 8725 §3.10 and RFC 7515 §4.1.2, §4.1.3, §4.1.5: `jku`, `jwk` and `x5u` are the token's
/// own word about its key. Following them would let anyone vouch for themselves (and make the
/// verifier fetch URLs of an attacker's choosing), so the foreign key set is never fetched.
#[tokio::test]
async fn jku_x5u_and_jwk_headers_are_ignored_and_never_fetched_rfc8725_3_10() {
    let fixture = Fixture::start().await;
    let claims = fixture.claims();
    let stranger = TestSigner::generate();
    let stranger_kid = stranger.thumbprint();
    let stranger_jwk = stranger.jwk(&stranger_kid);
    let (key_server, fetches) =
        counting_key_server(json!({"keys": [stranger_jwk]}).to_string()).await;
    let jku = format!("{key_server}/jwks.json");
    let x5u = format!("{key_server}/cert.pem");

    for kid in [stranger_kid.as_str(), fixture.kid.as_str()] {
        let headers = [
            (
                "jku",
                json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "jku": jku}),
            ),
            (
                "x5u",
                json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "x5u": x5u}),
            ),
            (
                "jwk",
                json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "jwk": stranger_jwk}),
            ),
            (
                "jku, x5u and jwk",
                json!({"alg": "RS256", "typ": "at+jwt", "kid": kid, "jku": jku, "x5u": x5u, "jwk": stranger_jwk}),
            ),
        ];
        for (name, header) in &headers {
            let token = stranger.sign(header, &claims);
            fixture
                .assert_invalid_token(&token, &format!("{name} header with kid {kid}"))
                .await;
        }
    }

    assert_eq!(
        fetches.load(Ordering::SeqCst),
        0,
        "the foreign key set was fetched"
    );
}

/// RFC 7519 §4.1.4: past `exp` (beyond the allowed clock skew) the token is refused.
#[tokio::test]
async fn expired_token_is_invalid_token_rfc7519_4_1_4() {
    let fixture = Fixture::start().await;
    let mut claims = fixture.claims();
    let now = unix_now();
    claims["iat"] = json!(now - 3600);
    claims["exp"] = json!(now - LEEWAY_SECONDS - 60);

    fixture
        .assert_invalid_token(&fixture.forge(&fixture.header(), &claims), "expired")
        .await;
}

/// RFC 7519 §4.1.5: before `nbf` (beyond the allowed clock skew) the token is refused.
#[tokio::test]
async fn token_not_valid_yet_is_invalid_token_rfc7519_4_1_5() {
    let fixture = Fixture::start().await;
    let mut claims = fixture.claims();
    let now = unix_now();
    claims["nbf"] = json!(now + LEEWAY_SECONDS + 120);
    claims["exp"] = json!(now + 3600);

    fixture
        .assert_invalid_token(
            &fixture.forge(&fixture.header(), &claims),
            "nbf in the future",
        )
        .await;
}

/// RFC 8725 §3.8, RFC 9068 §4: `iss` must be exactly the trusted issuer.
#[tokio::test]
async fn token_naming_another_issuer_is_invalid_token_rfc8725_3_8() {
    let fixture = Fixture::start().await;

    for issuer in [
        json!("http://evil.example"),
        json!(format!("{}.evil.example", fixture.auth.url)),
        json!(""),
        json!([fixture.auth.url]),
    ] {
        let mut claims = fixture.claims();
        claims["iss"] = issuer.clone();
        fixture
            .assert_invalid_token(
                &fixture.forge(&fixture.header(), &claims),
                &format!("iss {issuer}"),
            )
            .await;
    }
    let mut claims = fixture.claims();
    claims.as_object_mut().unwrap().remove("iss");
    fixture
        .assert_invalid_token(&fixture.forge(&fixture.header(), &claims), "no iss")
        .await;
}

/// RFC 8725 §3.9, RFC 9068 §4: the resource server's own name must be in `aud`.
#[tokio::test]
async fn token_for_another_audience_is_invalid_token_rfc8725_3_9() {
    let fixture = Fixture::start().await;

    for audience in [
        json!("other-api"),
        json!(["other-api", "billing"]),
        json!("API"),
        json!([]),
    ] {
        let mut claims = fixture.claims();
        claims["aud"] = audience.clone();
        fixture
            .assert_invalid_token(
                &fixture.forge(&fixture.header(), &claims),
                &format!("aud {audience}"),
            )
            .await;
    }
    let mut claims = fixture.claims();
    claims.as_object_mut().unwrap().remove("aud");
    fixture
        .assert_invalid_token(&fixture.forge(&fixture.header(), &claims), "no aud")
        .await;
}

/// RFC 9068 §2.2 makes `exp` required, and RFC 7519 §4.1.4 gives it its meaning: a token
/// without one would never expire.
#[tokio::test]
async fn token_without_exp_is_invalid_token_rfc7519_4_1_4() {
    let fixture = Fixture::start().await;
    let mut claims = fixture.claims();
    claims.as_object_mut().unwrap().remove("exp");

    fixture
        .assert_invalid_token(&fixture.forge(&fixture.header(), &claims), "no exp")
        .await;
    claims["exp"] = json!(null);
    fixture
        .assert_invalid_token(&fixture.forge(&fixture.header(), &claims), "exp null")
        .await;
}

/// RFC 7515 §5.2, RFC 6750 §3.1: a genuine token whose payload is altered keeps a signature
/// that no longer matches.
#[tokio::test]
async fn token_with_a_tampered_payload_is_invalid_token_rfc6750_3_1() {
    let fixture = Fixture::start().await;
    fixture
        .auth
        .add_user("mallory", "mallory's password", "")
        .await;
    let genuine = fixture
        .auth
        .password_grant("mallory", "mallory's password")
        .await
        .access_token;
    assert_eq!(
        fixture.api.get_me(&genuine).await.status(),
        200,
        "the untouched token is accepted"
    );
    let parts: Vec<&str> = genuine.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mut claims = claims_of(&genuine);

    claims["preferred_username"] = json!("admin");
    claims["scope"] = json!("admin");
    let tampered = format!("{}.{}.{}", parts[0], b64url(claims.to_string()), parts[2]);
    fixture
        .assert_invalid_token(&tampered, "payload altered")
        .await;

    // One flipped bit in the payload, or the signature, is enough.
    let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    payload[10] ^= 0x01;
    let flipped = format!("{}.{}.{}", parts[0], b64url(&payload), parts[2]);
    fixture
        .assert_invalid_token(&flipped, "one payload bit flipped")
        .await;
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 0x01;
    let bad_signature = format!("{}.{}.{}", parts[0], parts[1], b64url(&signature));
    fixture
        .assert_invalid_token(&bad_signature, "one signature bit flipped")
        .await;
}

/// RFC 9068 §4 and RFC 8725 §3.11: a resource server checks `typ` is `at+jwt`, so an ID token
/// or any other JWT signed by the same key is not taken for an access token.
#[tokio::test]
async fn token_typed_other_than_at_jwt_is_invalid_token_rfc9068_4() {
    let fixture = Fixture::start().await;
    let claims = fixture.claims();

    for typ in [
        json!("JWT"),
        json!("jwt"),
        json!("application/jwt"),
        json!("at+jwt2"),
        json!(null),
    ] {
        let header = json!({"alg": "RS256", "typ": typ, "kid": fixture.kid});
        fixture
            .assert_invalid_token(&fixture.forge(&header, &claims), &format!("typ {typ}"))
            .await;
    }
    let without_typ = json!({"alg": "RS256", "kid": fixture.kid});
    fixture
        .assert_invalid_token(&fixture.forge(&without_typ, &claims), "no typ")
        .await;
}

/// A token that lists critical header extensions (`crit`) the verifier does not understand is
/// refused however genuine its signature (RFC 7515 §4.1.11); an explicit `null` is absent.
#[tokio::test]
async fn token_with_critical_extensions_is_invalid_token_rfc7515_4_1_11() {
    let fixture = Fixture::start().await;
    let claims = fixture.claims();
    // `null` too: the member is there, and no value of it means "no extensions" (strict JOSE
    // parsers refuse it as well).
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!(null)] {
        let header = json!({"alg": "RS256", "typ": "at+jwt", "kid": fixture.kid, "crit": crit});
        fixture
            .assert_invalid_token(&fixture.forge(&header, &claims), &format!("crit {crit}"))
            .await;
    }
}

/// A 100 KB token, otherwise genuine, is refused before any parsing: 401 `invalid_token`
/// (RFC 6750 §3.1), or 431 if the header is cut off first (RFC 6585 §5).
#[tokio::test]
async fn hundred_kilobyte_token_is_refused_rfc6750_3_1() {
    let fixture = Fixture::start().await;
    let mut claims = fixture.claims();
    claims["padding"] = json!("x".repeat(100 * 1024));
    let token = fixture.forge(&fixture.header(), &claims);
    assert!(token.len() > 100 * 1024);

    let response = fixture.api.get_me(&token).await;

    let status = response.status();
    let www_authenticate = challenge(&response);
    match status.as_u16() {
        401 => assert!(
            www_authenticate.contains(r#"error="invalid_token""#),
            "{www_authenticate}"
        ),
        431 => {}
        other => panic!("a 100 KB token got {other} (challenge {www_authenticate:?})"),
    }
    // The server is still there for the next request.
    let genuine = fixture.forge(&fixture.header(), &fixture.claims());
    assert_eq!(fixture.api.get_me(&genuine).await.status(), 200);
}
