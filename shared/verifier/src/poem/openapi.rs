//! poem-openapi glue: the security-scheme checkers and the refusals as the OpenAPI document
//! lists them.
//!
//! A handler that returns `Result<_, BearerRefusal>` gets its 400, 401, 403 and 503 answers
//! into the document, with their headers; the checkers hand the handler the claims of a
//! token the [`Verifier`] of the request data accepted.
//!
//! ```no_run
//! use oauth2_jwt_verifier::poem::{check_claims, BearerRefusal};
//! use oauth2_jwt_verifier::Claims;
//! use poem_openapi::{payload::PlainText, OpenApi, SecurityScheme};
//!
//! #[derive(serde::Deserialize)]
//! struct Profile {
//!     email: Option<String>,
//! }
//!
//! #[derive(SecurityScheme)]
//! #[oai(ty = "bearer", checker = "check_claims")]
//! struct Token(Claims<Profile>);
//!
//! struct Api;
//!
//! #[OpenApi]
//! impl Api {
//!     #[oai(path = "/me", method = "get")]
//!     async fn me(&self, token: Token) -> Result<PlainText<String>, BearerRefusal> {
//!         token.0.require_scope("profile")?;
//!         Ok(PlainText(token.0.extra.email.clone().unwrap_or_default()))
//!     }
//! }
//! ```

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::payload::Json;
use poem_openapi::ApiResponse;
use serde::de::DeserializeOwned;

use crate::claims::{AccessClaims, Claims, MissingScope};
use crate::http::bearer_token;
use crate::http::{BearerError, ErrorResponse, RETRY_AFTER_SECONDS};
use crate::verifier::Verifier;

/// The refusals of a protected route as the OpenAPI document shows them; handlers return
/// `Result<_, BearerRefusal>` so that the document lists them.
#[derive(ApiResponse, Debug)]
pub enum BearerRefusal {
    /// The Authorization header is malformed (RFC 6750 §3.1 `invalid_request`).
    #[oai(status = 400)]
    BadRequest(
        Json<ErrorResponse>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// No token, or a bad, expired, revoked or foreign one (RFC 6750 §3.1 `invalid_token`).
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorResponse>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The token lacks the scope, or no user stands behind it (`insufficient_scope`).
    #[oai(status = 403)]
    Forbidden(
        Json<ErrorResponse>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// The signing keys (or, failing closed, a current revocation list) could not be fetched;
    /// not the client's fault.
    #[oai(status = 503)]
    Unavailable(Json<ErrorResponse>, #[oai(header = "Retry-After")] u64),
}

impl From<BearerError> for BearerRefusal {
    fn from(err: BearerError) -> Self {
        let body = Json(err.body());
        let challenge = err.challenge();
        match err.status() {
            503 => Self::Unavailable(body, RETRY_AFTER_SECONDS),
            400 => Self::BadRequest(body, challenge),
            403 => Self::Forbidden(body, challenge),
            _ => Self::Unauthorized(body, challenge),
        }
    }
}

/// A missing scope is a 403 `insufficient_scope`, so `claims.require_scope(…)?` works in a
/// handler returning `Result<_, BearerRefusal>`.
impl From<MissingScope> for BearerRefusal {
    fn from(missing: MissingScope) -> Self {
        Self::from(BearerError::from(missing))
    }
}

/// A poem-openapi security scheme checker: verifies the bearer token with the [`Verifier`]
/// found in the request data and hands the handler its claims.
///
/// ```no_run
/// #[derive(poem_openapi::SecurityScheme)]
/// #[oai(ty = "bearer", checker = "oauth2_jwt_verifier::poem::check_bearer")]
/// struct Token(oauth2_jwt_verifier::AccessClaims);
/// ```
pub async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<AccessClaims> {
    one_bearer_token(req, &bearer)?;
    let verifier = req.data::<Verifier>().ok_or_else(super::no_verifier)?;
    verifier
        .verify(&bearer.token)
        .await
        .map_err(|err| BearerError::Invalid(err).into())
}

/// As [`check_bearer`], handing the handler [`Claims<X>`]: `X` is inferred from the scheme's
/// field (`struct Token(Claims<Profile>)`).
pub async fn check_claims<X: DeserializeOwned + 'static>(
    req: &Request,
    bearer: Bearer,
) -> poem::Result<Claims<X>> {
    one_bearer_token(req, &bearer)?;
    let verifier = req.data::<Verifier>().ok_or_else(super::no_verifier)?;
    verifier
        .verify_claims::<X>(&bearer.token)
        .await
        .map_err(|err| BearerError::Invalid(err).into())
}

/// poem-openapi's `Bearer` takes the first `Authorization` header and checks no syntax; the
/// request is read again as every other integration reads it (RFC 6750 §2.1, `http`), so that
/// a second header or a token that is no b64token is refused here as there, and a proxy that
/// looks at another copy of the header cannot disagree with what was verified.
fn one_bearer_token(req: &Request, bearer: &Bearer) -> Result<(), BearerError> {
    let headers = req.headers().get_all(poem::http::header::AUTHORIZATION);
    match bearer_token(headers.iter().map(poem::http::HeaderValue::as_bytes))? {
        Some(token) if token == bearer.token => Ok(()),
        Some(_) | None => Err(BearerError::InvalidRequest),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use poem::test::TestClient;
    use poem::{EndpointExt, Route};
    use poem_openapi::payload::PlainText;
    use poem_openapi::{OpenApi, OpenApiService, SecurityScheme};
    use serde_json::json;
    use test_kit::signer::{unix_now, TestSigner};

    use super::*;
    use crate::poem::BearerChallenge;
    use crate::verifier::{KeySet, VerifierConfig, VerifyError};

    #[derive(serde::Deserialize)]
    struct Profile {
        email: String,
    }

    #[derive(SecurityScheme)]
    #[oai(ty = "bearer", checker = "check_claims")]
    struct Token(Claims<Profile>);

    struct Api;

    #[OpenApi]
    impl Api {
        #[oai(path = "/email", method = "get")]
        async fn email(&self, token: Token) -> Result<PlainText<String>, BearerRefusal> {
            token.0.require_scope("profile")?;
            Ok(PlainText(token.0.extra.email.clone()))
        }
    }

    /// A service whose verifier holds `signer`'s key as `k`, offline.
    fn app(signer: &TestSigner) -> impl poem::Endpoint {
        let mut config = VerifierConfig::new("http://issuer.invalid".parse().unwrap(), "api");
        config.revocation_poll = Duration::ZERO;
        let keys = KeySet::from_jwks(signer.jwks("k").as_bytes(), Duration::from_secs(60));
        let verifier = Verifier::with_keys(config, keys.unwrap()).unwrap();
        let service = OpenApiService::new(Api, "test", "1");
        Route::new()
            .nest("/", service.with(BearerChallenge::default()))
            .data(verifier)
    }

    fn token(signer: &TestSigner, scope: &str) -> String {
        let now = unix_now();
        signer.sign(
            &json!({"alg": "RS256", "typ": "at+jwt", "kid": "k"}),
            &json!({"iss": "http://issuer.invalid", "sub": "u", "aud": "api", "exp": now + 60,
                    "iat": now, "jti": "j", "client_id": "c", "scope": scope,
                    "email": "u@example.com"}),
        )
    }

    #[tokio::test]
    async fn a_security_scheme_hands_over_claims_and_refuses_as_rfc6750_3_1_says() {
        let signer = TestSigner::generate();
        let client = TestClient::new(app(&signer));

        let ok = client
            .get("/email")
            .header(
                "authorization",
                format!("Bearer {}", token(&signer, "profile")),
            )
            .send()
            .await;
        ok.assert_status_is_ok();
        ok.assert_text("u@example.com").await;
        let scope = client
            .get("/email")
            .header("authorization", format!("Bearer {}", token(&signer, "")))
            .send()
            .await;
        scope.assert_status(poem::http::StatusCode::FORBIDDEN);
        let missing = client.get("/email").send().await;
        missing.assert_status(poem::http::StatusCode::UNAUTHORIZED);
        missing.assert_header("www-authenticate", r#"Bearer realm="api""#);
        let forged = token(&TestSigner::generate(), "profile");
        let refused = client
            .get("/email")
            .header("authorization", format!("Bearer {forged}"))
            .send()
            .await;
        refused.assert_status(poem::http::StatusCode::UNAUTHORIZED);
    }

    /// The security scheme reads the header as every integration does (RFC 6750 §2.1): a second
    /// `Authorization` header or a credential that is no b64token is a malformed request,
    /// whatever poem-openapi's own reading took; another scheme is no bearer token at all.
    #[tokio::test]
    async fn the_scheme_reads_the_header_as_rfc6750_2_1_says() {
        let signer = TestSigner::generate();
        let client = TestClient::new(app(&signer));
        let good = format!("Bearer {}", token(&signer, "profile"));

        let two = client
            .get("/email")
            .header("authorization", good.as_str())
            .header("authorization", "Bearer other")
            .send()
            .await;
        two.assert_status(poem::http::StatusCode::BAD_REQUEST);
        let spaced = client
            .get("/email")
            .header("authorization", format!("{good} trailing"))
            .send()
            .await;
        spaced.assert_status(poem::http::StatusCode::BAD_REQUEST);
        let basic = client
            .get("/email")
            .header("authorization", "Basic dTpw")
            .send()
            .await;
        basic.assert_status(poem::http::StatusCode::UNAUTHORIZED);
        basic.assert_header("www-authenticate", r#"Bearer realm="api""#);
    }

    #[test]
    fn refusals_map_to_their_documented_answers() {
        let unknown = BearerError::Invalid(VerifyError::RevocationsUnavailable);
        assert!(matches!(
            BearerRefusal::from(unknown),
            BearerRefusal::Unavailable(_, 5)
        ));
        assert!(matches!(
            BearerRefusal::from(MissingScope { needed: "x".into() }),
            BearerRefusal::Forbidden(..)
        ));
        assert!(matches!(
            BearerRefusal::from(BearerError::InvalidRequest),
            BearerRefusal::BadRequest(..)
        ));
        assert!(matches!(
            BearerRefusal::from(BearerError::Invalid(VerifyError::Expired)),
            BearerRefusal::Unauthorized(..)
        ));
    }
}
