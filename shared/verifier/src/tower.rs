//! A `tower` layer that guards any `http` service (hyper, axum, tonic) with a bearer token.
//!
//! The layer verifies the token before the inner service sees the request, so a route that
//! forgets to ask for claims is still protected; the handler finds the [`Claims<X>`] in the
//! request extensions. Refusals are answered by the layer itself, as RFC 6750 says for HTTP
//! and as gRPC says for a request whose `content-type` is `application/grpc…` (HTTP 200 with
//! `grpc-status`: 16 `UNAUTHENTICATED`, 7 `PERMISSION_DENIED`, 14 `UNAVAILABLE`), which is why
//! one layer serves both an axum app and a tonic server. Its body is
//! `Either<Full<Bytes>, B>`: the inner service's body `B` untouched, or the refusal; both
//! axum and tonic accept it, and no response body is boxed.
//!
//! The realm is the layer's: a refusal rendered further in (the axum `IntoResponse` of
//! [`BearerError`]) carries the error in its extensions and the layer names its realm in it.
//!
//! ```no_run
//! use oauth2_jwt_verifier::tower::BearerLayer;
//! use oauth2_jwt_verifier::{Verifier, VerifierConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = VerifierConfig::new("https://issuer.invalid".parse()?, "api");
//! let verifier = Verifier::start(config)?;
//! // Every request needs a token granting `items:read`; challenges name the realm `items`.
//! let layer = BearerLayer::new(verifier).realm("items").require_scope("items:read");
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::{Either, Full};
use serde::de::DeserializeOwned;

use crate::claims::{Claims, NoExtra};
use crate::http::{bearer_token, BearerError, DEFAULT_REALM, RETRY_AFTER_SECONDS};
use crate::verifier::Verifier;

/// The body of a response from [`RequireBearer`]: the refusal's, or the inner service's.
pub type BearerBody<B> = Either<Full<Bytes>, B>;

/// Verifies the bearer token of every request and puts its [`Claims<X>`] in the request
/// extensions; see the [module docs](self). Cheap to clone.
pub struct BearerLayer<X = NoExtra> {
    settings: Arc<Settings>,
    extra: PhantomData<fn() -> X>,
}

/// What a layer and its services share.
struct Settings {
    verifier: Verifier,
    realm: Cow<'static, str>,
    scopes: Vec<String>,
}

impl BearerLayer<NoExtra> {
    /// A layer over `verifier`, in the realm [`DEFAULT_REALM`], requiring no scope.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            settings: Arc::new(Settings {
                verifier,
                realm: Cow::Borrowed(DEFAULT_REALM),
                scopes: Vec::new(),
            }),
            extra: PhantomData,
        }
    }
}

impl<X> BearerLayer<X> {
    /// The realm every challenge names (RFC 6750 §3).
    pub fn realm(self, realm: impl Into<Cow<'static, str>>) -> Self {
        self.adjust(|settings| settings.realm = realm.into())
    }

    /// Every request's token must grant `scope` (all of them, when called again); one that
    /// does not is refused 403 `insufficient_scope` (gRPC `PERMISSION_DENIED`).
    pub fn require_scope(self, scope: impl Into<String>) -> Self {
        self.adjust(|settings| settings.scopes.push(scope.into()))
    }

    /// The same layer, reading the payload into `Y` as well: handlers find [`Claims<Y>`].
    pub fn with_extra<Y>(self) -> BearerLayer<Y> {
        BearerLayer {
            settings: self.settings,
            extra: PhantomData,
        }
    }

    fn adjust(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings {
            verifier: self.settings.verifier.clone(),
            realm: self.settings.realm.clone(),
            scopes: self.settings.scopes.clone(),
        };
        change(&mut settings);
        self.settings = Arc::new(settings);
        self
    }
}

impl<X> Clone for BearerLayer<X> {
    fn clone(&self) -> Self {
        Self {
            settings: self.settings.clone(),
            extra: PhantomData,
        }
    }
}

impl<X> std::fmt::Debug for BearerLayer<X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerLayer")
            .field("realm", &self.settings.realm)
            .field("scopes", &self.settings.scopes)
            .finish_non_exhaustive()
    }
}

impl<S, X> tower_layer::Layer<S> for BearerLayer<X> {
    type Service = RequireBearer<S, X>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireBearer {
            inner,
            settings: self.settings.clone(),
            extra: PhantomData,
        }
    }
}

/// The service [`BearerLayer`] wraps around another.
pub struct RequireBearer<S, X = NoExtra> {
    inner: S,
    settings: Arc<Settings>,
    extra: PhantomData<fn() -> X>,
}

impl<S: Clone, X> Clone for RequireBearer<S, X> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            settings: self.settings.clone(),
            extra: PhantomData,
        }
    }
}

impl<S: std::fmt::Debug, X> std::fmt::Debug for RequireBearer<S, X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireBearer")
            .field("inner", &self.inner)
            .field("realm", &self.settings.realm)
            .finish_non_exhaustive()
    }
}

impl<S, X, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for RequireBearer<S, X>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    X: DeserializeOwned + Clone + Send + Sync + 'static,
{
    type Response = Response<BearerBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let settings = self.settings.clone();
        Box::pin(async move {
            let grpc = is_grpc(req.headers());
            match settings.judge::<X>(req.headers()).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    let response = inner.call(req).await?;
                    Ok(settings.in_realm(response.map(Either::Right)))
                }
                Err(err) if grpc => Ok(grpc_refusal(&err).map(Either::Left)),
                Err(err) => Ok(http_refusal(&err, &settings.realm).map(Either::Left)),
            }
        })
    }
}

impl Settings {
    /// The claims of the request's token, or why it is refused.
    async fn judge<X: DeserializeOwned + 'static>(
        &self,
        headers: &HeaderMap,
    ) -> Result<Claims<X>, BearerError> {
        let values = headers.get_all(header::AUTHORIZATION);
        let token =
            bearer_token(values.iter().map(HeaderValue::as_bytes))?.ok_or(BearerError::Missing)?;
        let claims = self.verifier.verify_claims::<X>(token).await?;
        for scope in &self.scopes {
            claims.require_scope(scope)?;
        }
        Ok(claims)
    }

    /// A refusal from further in, marked by its [`BearerError`] extension, names our realm.
    fn in_realm<B>(&self, mut response: Response<B>) -> Response<B> {
        if self.realm == DEFAULT_REALM {
            return response;
        }
        let challenge = response
            .extensions()
            .get::<BearerError>()
            .filter(|err| !err.is_unavailable())
            .and_then(|err| HeaderValue::from_str(&err.challenge_in(&self.realm)).ok());
        if let Some(challenge) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// gRPC requests are answered the gRPC way (gRPC over HTTP/2: `content-type` is
/// `application/grpc` with an optional `+proto`, `+json`, … suffix).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// The RFC 6750 answer to `err`, its challenge naming `realm`: a JSON body, `no-store`, and
/// `Retry-After` instead of a challenge when the verifier cannot judge tokens now. The error
/// rides along in the extensions.
pub fn http_refusal(err: &BearerError, realm: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(err.body_json())));
    *response.status_mut() = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if err.is_unavailable() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    } else if let Ok(challenge) = HeaderValue::from_str(&err.challenge_in(realm)) {
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    }
    response.extensions_mut().insert(err.clone());
    response
}

/// The gRPC answer to `err`: a trailers-only response, HTTP 200 with `grpc-status` and
/// `grpc-message` in its headers.
pub fn grpc_refusal(err: &BearerError) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(err.grpc_code()));
    if let Ok(message) = HeaderValue::from_str(&grpc_message(&err.to_string())) {
        headers.insert("grpc-message", message);
    }
    response.extensions_mut().insert(err.clone());
    response
}

/// `grpc-message` is percent-encoded: `%` and every byte outside printable ASCII.
fn grpc_message(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::VerifyError;

    #[test]
    fn refusals_answer_as_rfc6750_3_says() {
        let missing = http_refusal(&BearerError::Missing, "items");
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            missing.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer realm="items""#
        );
        assert_eq!(missing.headers()[header::CACHE_CONTROL], "no-store");
        let down = http_refusal(&BearerError::Invalid(VerifyError::KeysUnavailable), "api");
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.headers()[header::RETRY_AFTER], "5");
        let grpc = grpc_refusal(&BearerError::Invalid(VerifyError::Expired));
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "16");
        assert_eq!(grpc_message("50% é"), "50%25 %C3%A9");
    }

    /// A verifier whose issuer cannot be reached holds no keys: not the client's fault, so
    /// 503 with `Retry-After` over HTTP and `UNAVAILABLE` over gRPC.
    #[tokio::test]
    async fn a_verifier_without_keys_answers_503_and_grpc_unavailable() {
        use tower::ServiceExt;
        let config = crate::VerifierConfig::new("http://127.0.0.1:1".parse().unwrap(), "api");
        let verifier = Verifier::new(config).unwrap();
        let signer = test_kit::signer::TestSigner::generate();
        let token = signer.sign(
            &serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "k"}),
            &serde_json::json!({"sub": "x"}),
        );
        let inner = tower::service_fn(|_: Request<()>| async {
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
        });
        let service = tower_layer::Layer::layer(&BearerLayer::new(verifier), inner);
        let request = |grpc: bool| {
            let mut builder =
                Request::builder().header(header::AUTHORIZATION, format!("Bearer {token}"));
            if grpc {
                builder = builder.header(header::CONTENT_TYPE, "application/grpc+proto");
            }
            builder.body(()).unwrap()
        };

        let http = service.clone().oneshot(request(false)).await.unwrap();
        assert_eq!(http.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(http.headers()[header::RETRY_AFTER], "5");
        assert_eq!(http.headers()[header::CACHE_CONTROL], "no-store");
        let grpc = service.oneshot(request(true)).await.unwrap();
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "14");
    }
}
