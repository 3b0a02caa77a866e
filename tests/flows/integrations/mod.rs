//! The verifier's framework integrations, each in a small service of its own on an ephemeral
//! port, judging tokens of a real auth-server: the tower layer in front of an axum app and of
//! a tonic server, and the poem extractor. The forged tokens are the classes of the
//! hostile-token suite, so every integration refuses what the resource server refuses.

mod axum_layer;
mod poem_extractor;
mod tonic_layer;

use oauth2_jwt_verifier::{Readiness, Verifier, VerifierConfig};
use serde_json::{json, Value};
use system_tests::{claims_of, TestAuth};
use test_kit::signer::{sign_hs256, signing_input, unix_now, TestSigner};

/// The scope the guarded routes need; `reader` has it, `plain` does not.
pub const READ_SCOPE: &str = "items:read";

/// A real auth-server with two users, a verifier ready to judge its tokens, and its signing
/// key for forging.
pub struct Issuer {
    pub auth: TestAuth,
    pub verifier: Verifier,
    key: TestSigner,
    kid: String,
}

impl Issuer {
    pub async fn start() -> Self {
        let auth = TestAuth::spawn().await;
        auth.add_user("reader", "reader's password", READ_SCOPE)
            .await;
        auth.add_user("plain", "plain's password", "").await;
        let audience = resource_server::Settings::default().audience;
        let config = VerifierConfig::new(auth.url.parse().unwrap(), audience);
        let verifier = Verifier::new(config).unwrap();
        verifier.refresh_now().await.unwrap();
        verifier.poll_revocations_now().await.unwrap();
        assert_eq!(verifier.readiness(), Readiness::Ready);
        let kid = auth.active_kid().await;
        let key = TestSigner::from_pkcs8(&auth.private_signing_key(&kid).await);
        Self {
            auth,
            verifier,
            key,
            kid,
        }
    }

    /// An access token from a password grant (RFC 6749 §4.3) asking for `scope`.
    pub async fn token(&self, username: &str, scope: &str) -> String {
        let password = format!("{username}'s password");
        let response = self
            .auth
            .token(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", &password),
                ("scope", scope),
            ])
            .await;
        assert_eq!(response.status(), 200, "password grant for {username}");
        let body: Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            claims_of(&token)["scope"],
            scope,
            "scope granted to {username}"
        );
        token
    }

    /// The token of `reader`, granted [`READ_SCOPE`].
    pub async fn reader(&self) -> String {
        self.token("reader", READ_SCOPE).await
    }

    fn header(&self) -> Value {
        json!({"alg": "RS256", "typ": "at+jwt", "kid": self.kid})
    }

    /// The claims of a genuine token of `reader` (RFC 9068 §2.2) for the resource server's
    /// audience, granting [`READ_SCOPE`], valid for five minutes.
    fn claims(&self) -> Value {
        self.claims_for(&resource_server::Settings::default().audience, READ_SCOPE)
    }

    /// The claims of a genuine token of `reader` for `audience`, granting `scope`.
    fn claims_for(&self, audience: &str, scope: &str) -> Value {
        let now = unix_now();
        json!({
            "iss": self.auth.url,
            "sub": "reader",
            "aud": audience,
            "exp": now + 300,
            "iat": now,
            "jti": format!("forged-{now}"),
            "client_id": "public",
            "scope": scope,
            "preferred_username": "reader",
        })
    }

    /// The control: a forgery with nothing wrong, which must be accepted for the refusals of
    /// [`Issuer::forged`] to mean anything.
    pub fn well_forged(&self) -> String {
        self.key.sign(&self.header(), &self.claims())
    }

    /// [`Issuer::well_forged`] for another service: its audience and a scope it needs.
    pub fn well_forged_for(&self, audience: &str, scope: &str) -> String {
        self.key
            .sign(&self.header(), &self.claims_for(audience, scope))
    }

    /// One token per class of the hostile-token suite, each valid but for the defect named.
    pub fn forged(&self) -> Vec<(&'static str, String)> {
        self.forged_from(self.claims())
    }

    /// [`Issuer::forged`] for another service: each class made from a token for `audience`
    /// granting `scope`.
    pub fn forged_for(&self, audience: &str, scope: &str) -> Vec<(&'static str, String)> {
        self.forged_from(self.claims_for(audience, scope))
    }

    fn forged_from(&self, claims: Value) -> Vec<(&'static str, String)> {
        let header = self.header();
        let genuine = self.key.sign(&header, &claims);
        let with_header = |change: &dyn Fn(&mut Value)| {
            let mut header = header.clone();
            change(&mut header);
            self.key.sign(&header, &claims)
        };
        let with_claims = |change: &dyn Fn(&mut Value)| {
            let mut claims = claims.clone();
            change(&mut claims);
            self.key.sign(&header, &claims)
        };
        let now = unix_now();
        let none = json!({"alg": "none", "typ": "at+jwt", "kid": self.kid});
        let hs256 = json!({"alg": "HS256", "typ": "at+jwt", "kid": self.kid});
        let mut tampered: Vec<String> = genuine.split('.').map(str::to_owned).collect();
        let mut payload = claims.clone();
        payload["sub"] = json!("admin");
        tampered[1] = signing_input(&header, &payload)
            .split('.')
            .nth(1)
            .unwrap()
            .to_owned();
        vec![
            (
                "alg none (RFC 8725 §3.1)",
                format!("{}.", signing_input(&none, &claims)),
            ),
            (
                "HS256 keyed with the public modulus (RFC 8725 §3.1)",
                sign_hs256(&hs256, &claims, &self.key.modulus()),
            ),
            (
                "a foreign key under the issuer's kid (RFC 6750 §3.1)",
                TestSigner::generate().sign(&header, &claims),
            ),
            (
                "an unknown kid",
                with_header(&|h| h["kid"] = json!("no-such-key")),
            ),
            (
                "no kid",
                with_header(&|h| {
                    h.as_object_mut().unwrap().remove("kid");
                }),
            ),
            (
                "typ JWT (RFC 9068 §4)",
                with_header(&|h| h["typ"] = json!("JWT")),
            ),
            (
                "a critical extension (RFC 7515 §4.1.11)",
                with_header(&|h| h["crit"] = json!(["exp-ext"])),
            ),
            (
                "expired (RFC 7519 §4.1.4)",
                with_claims(&|c| {
                    c["iat"] = json!(now - 3600);
                    c["exp"] = json!(now - 600);
                }),
            ),
            (
                "not valid yet (RFC 7519 §4.1.5)",
                with_claims(&|c| c["nbf"] = json!(now + 600)),
            ),
            (
                "no exp (RFC 9068 §2.2)",
                with_claims(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            ),
            (
                "another issuer (RFC 8725 §3.8)",
                with_claims(&|c| c["iss"] = json!("http://evil.invalid")),
            ),
            (
                "another audience (RFC 8725 §3.9)",
                with_claims(&|c| c["aud"] = json!("other-api")),
            ),
            ("a tampered payload (RFC 7515 §5.2)", tampered.join(".")),
            ("not a JWT", "not-a-jwt".to_owned()),
        ]
    }
}
