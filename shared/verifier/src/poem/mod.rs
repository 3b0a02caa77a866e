//! poem glue: a bearer token turned into verified claims, and refusals into RFC 6750 answers.
//!
//! A poem service without OpenAPI takes [`Claims<X>`](crate::Claims) as an extractor; one
//! with poem-openapi (feature `poem-openapi`, module `openapi`) checks its security scheme
//! with `check_bearer` or `check_claims` and lists the refusals in its
//! document. Either way the [`Verifier`] comes from the request data (`.data(verifier)`), so
//! the routes share one key set, and the refusals are [`BearerError`]s, rendered by the
//! rules of [`crate::http`]. The [`BearerChallenge`] middleware is where the realm is set:
//! it names its realm in every challenge passing through, and gives poem-openapi's own
//! rejection of a missing `Authorization` header the challenge it lacks.
//!
//! ```no_run
//! use oauth2_jwt_verifier::poem::BearerChallenge;
//! use oauth2_jwt_verifier::{Claims, Verifier, VerifierConfig};
//! use poem::{get, handler, EndpointExt, Route};
//!
//! #[derive(serde::Deserialize)]
//! struct Profile {
//!     email: Option<String>,
//! }
//!
//! #[handler]
//! fn me(claims: Claims<Profile>) -> poem::Result<String> {
//!     claims.require_scope("profile")?; // 403 insufficient_scope
//!     let email = claims.extra.email.as_deref().unwrap_or_default();
//!     Ok(format!("{} <{email}>", claims.sub))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifierConfig::new("https://issuer.invalid".parse()?, "api");
//! let verifier = Verifier::start(config)?;
//! let app = Route::new()
//!     .at("/me", get(me))
//!     .with(BearerChallenge::default().realm("orders"))
//!     .data(verifier);
//! # let _ = app;
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "poem-openapi")]
pub mod openapi;

use std::borrow::Cow;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};
use serde::de::DeserializeOwned;

use crate::claims::{Claims, MissingScope};
use crate::http::{bearer_token, RETRY_AFTER_SECONDS};
use crate::verifier::Verifier;

pub use crate::http::{BearerError, ErrorResponse, DEFAULT_REALM};
#[cfg(feature = "poem-openapi")]
pub use openapi::{check_bearer, check_claims, BearerRefusal};

impl BearerError {
    /// For handlers that return `poem::Result`.
    pub fn into_poem(self) -> poem::Error {
        poem::Error::from(self)
    }
}

impl poem::error::ResponseError for BearerError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(BearerError::status(self)).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    fn as_response(&self) -> Response {
        refusal(self, DEFAULT_REALM)
    }
}

/// 403 `insufficient_scope`, so `claims.require_scope(…)?` works in a handler returning
/// `poem::Result`.
impl poem::error::ResponseError for MissingScope {
    fn status(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }

    fn as_response(&self) -> Response {
        refusal(&BearerError::from(self.clone()), DEFAULT_REALM)
    }
}

/// The RFC 6750 answer to `err`, its challenge naming `realm`: a JSON body, no caching, and
/// `Retry-After` instead of a challenge when the verifier cannot judge tokens now.
fn refusal(err: &BearerError, realm: &str) -> Response {
    let status = poem::error::ResponseError::status(err);
    let mut response = Response::builder()
        .status(status)
        .content_type("application/json; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(err.body_json());
    let headers = response.headers_mut();
    if err.is_unavailable() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    } else if let Ok(challenge) = HeaderValue::from_str(&err.challenge_in(realm)) {
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// Missing `Verifier` in the request data: the service is built wrong, not the client.
fn no_verifier() -> poem::Error {
    poem::Error::from_string(
        "the oauth2-jwt-verifier Verifier is missing from the request data (.data(verifier))",
        StatusCode::INTERNAL_SERVER_ERROR,
    )
}

/// Verifies the request's bearer token with the [`Verifier`] of the request data.
async fn verify<X: DeserializeOwned + 'static>(req: &Request) -> poem::Result<Claims<X>> {
    let verifier = req.data::<Verifier>().ok_or_else(no_verifier)?;
    let values = req.headers().get_all(header::AUTHORIZATION);
    let token =
        bearer_token(values.iter().map(HeaderValue::as_bytes))?.ok_or(BearerError::Missing)?;
    Ok(verifier
        .verify_claims::<X>(token)
        .await
        .map_err(BearerError::Invalid)?)
}

/// The verified claims of the request's bearer token (RFC 6750 §2.1), with `extra` read into
/// the service's own type. The [`Verifier`] is taken from the request data (a 500 when it is
/// missing); a refusal is answered as [`BearerError`] says.
///
/// Take `Claims<X>`, not `Option<Claims<X>>`: poem's `Option` extractor turns every failure
/// into `None`, so a forged or expired token (and a missing verifier) would reach the handler
/// as an anonymous request. A route that serves anonymous callers too reads the
/// `Authorization` header itself and calls [`Verifier::verify_claims`] when there is one.
impl<'a, X: DeserializeOwned + Send + Sync + 'static> FromRequest<'a> for Claims<X> {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        verify(req).await
    }
}

/// Names its realm in every bearer challenge of the responses passing through, and gives
/// poem-openapi's own rejection of a missing or unparsable `Authorization` header the RFC
/// 6750 §3 challenge it lacks. `BearerChallenge::default()` keeps [`DEFAULT_REALM`].
#[derive(Clone, Debug)]
pub struct BearerChallenge {
    realm: Cow<'static, str>,
}

impl Default for BearerChallenge {
    fn default() -> Self {
        Self {
            realm: Cow::Borrowed(DEFAULT_REALM),
        }
    }
}

impl BearerChallenge {
    /// The realm every challenge names (RFC 6750 §3).
    pub fn realm(mut self, realm: impl Into<Cow<'static, str>>) -> Self {
        self.realm = realm.into();
        self
    }
}

impl<E: Endpoint> Middleware<E> for BearerChallenge {
    type Output = BearerChallengeEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        BearerChallengeEndpoint {
            inner: ep,
            realm: self.realm.clone(),
        }
    }
}

/// The endpoint [`BearerChallenge`] wraps around another.
pub struct BearerChallengeEndpoint<E> {
    inner: E,
    realm: Cow<'static, str>,
}

impl<E: Endpoint> Endpoint for BearerChallengeEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        // What poem-openapi's own rejection of the header means, read as every integration
        // reads it: another scheme is no bearer token at all (a bare challenge), two headers or
        // a token that is no b64token a malformed request.
        #[cfg(feature = "poem-openapi")]
        let rejection = match bearer_token(
            req.headers()
                .get_all(header::AUTHORIZATION)
                .iter()
                .map(HeaderValue::as_bytes),
        ) {
            Err(err) => err,
            Ok(None) => BearerError::Missing,
            Ok(Some(_)) => BearerError::InvalidRequest,
        };
        match self.inner.call(req).await {
            Ok(output) => Ok(self.in_realm(output.into_response())),
            #[cfg(feature = "poem-openapi")]
            Err(err) if err.is::<poem_openapi::error::AuthorizationError>() => {
                Err(self.error(&rejection))
            }
            Err(err) => {
                if let Some(bearer) = err.downcast_ref::<BearerError>() {
                    Err(self.error(bearer))
                } else if let Some(missing) = err.downcast_ref::<MissingScope>() {
                    Err(self.error(&BearerError::from(missing.clone())))
                } else {
                    Err(err)
                }
            }
        }
    }
}

impl<E> BearerChallengeEndpoint<E> {
    /// `err` as a poem error whose response names this realm; still a [`BearerError`] to
    /// `poem::Error::is` when the realm is the default.
    fn error(&self, err: &BearerError) -> poem::Error {
        if self.realm == DEFAULT_REALM {
            err.clone().into()
        } else {
            poem::Error::from_response(refusal(err, &self.realm))
        }
    }

    /// A refusal rendered elsewhere (a handler's `BearerRefusal`) names the default realm:
    /// this puts ours in its place.
    fn in_realm(&self, mut response: Response) -> Response {
        // A refusal (a challenge, or a 503 asking to come back) is never cached (RFC 6750
        // §3: it answers for one token), whichever glue made it.
        let refusal = response.headers().contains_key(header::WWW_AUTHENTICATE)
            || (response.status() == StatusCode::SERVICE_UNAVAILABLE
                && response.headers().contains_key(header::RETRY_AFTER));
        if refusal && !response.headers().contains_key(header::CACHE_CONTROL) {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if self.realm == DEFAULT_REALM {
            return response;
        }
        let default = format!(r#"Bearer realm="{DEFAULT_REALM}""#);
        let renamed = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix(&default))
            .map(|rest| {
                let head = BearerError::Missing.challenge_in(&self.realm);
                format!("{head}{rest}")
            })
            .and_then(|value| HeaderValue::from_str(&value).ok());
        if let Some(value) = renamed {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use poem::test::TestClient;
    use poem::{get, handler, EndpointExt, Route};

    use super::*;
    use crate::verifier::VerifyError;

    #[handler]
    fn refuse() -> poem::Result<String> {
        Err(BearerError::Invalid(VerifyError::Expired).into_poem())
    }

    #[tokio::test]
    async fn refusals_are_rfc6750_answers_in_the_configured_realm() {
        let app = Route::new()
            .at("/", get(refuse))
            .with(BearerChallenge::default().realm("orders"));
        let response = TestClient::new(app).get("/").send().await;
        response.assert_status(StatusCode::UNAUTHORIZED);
        response.assert_header("cache-control", "no-store");
        let challenge = response.0.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with(r#"Bearer realm="orders", error="invalid_token""#),
            "{challenge}"
        );
        let body: serde_json::Value = response.0.into_body().into_json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
    }

    #[tokio::test]
    async fn the_extractor_without_a_verifier_is_a_500() {
        #[handler]
        fn me(claims: Claims) -> String {
            claims.sub.clone()
        }
        let app = Route::new().at("/", get(me));
        TestClient::new(app)
            .get("/")
            .send()
            .await
            .assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn unavailable_is_503_with_retry_after() {
        let response = refusal(&BearerError::Invalid(VerifyError::KeysUnavailable), "api");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
