//! Bearer tokens for a `tower::Service` of outgoing `http::Request`s (a hyper or tonic client
//! stack): the layer adds the token, and a 401 answer drops it so that the next request carries
//! a new one. It does not resend: a tower body is not generally cloneable.
//!
//! The layer is bound to the origin of the API the tokens are for: a client stack shared with
//! calls elsewhere sends those without the token.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{HeaderValue, AUTHORIZATION};
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;
use url::{Origin, Url};

use crate::source::TokenSource;
use crate::token::TokenRequest;

/// The error of a [`BearerService`]: the inner service's, or why no token could be had.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Layer`] adding `Authorization: Bearer …` (RFC 6750 §2.1) from a [`TokenSource`] to
/// the requests to one origin (scheme, host and port); requests to another origin pass
/// through untouched.
///
/// A request whose URI has no scheme and authority (only a path, as a tonic client sends it
/// before its channel adds the origin) cannot be going anywhere but where the inner service is
/// bound, and carries the token: bind the layer to that destination.
///
/// ```no_run
/// # fn run<S>(tokens: oauth2_token_source::TokenSource, inner: S) -> Result<(), url::ParseError> {
/// use oauth2_token_source::tower::BearerLayer;
/// use tower_layer::Layer;
///
/// let service = BearerLayer::new(tokens, "https://items.example".parse()?).layer(inner);
/// # let _ = service;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BearerLayer {
    source: TokenSource,
    origin: Origin,
    request: Option<TokenRequest>,
}

impl BearerLayer {
    /// Tokens of the source's default request, for requests to the origin of `api` (its
    /// scheme, host and port; the path is ignored). An `api` without an `http` or `https`
    /// origin matches no absolute URI.
    pub fn new(source: TokenSource, api: Url) -> Self {
        Self {
            source,
            origin: api.origin(),
            request: None,
        }
    }

    /// Tokens for `request` instead (another scope or audience), for requests to the origin
    /// of `api`.
    pub fn with_request(source: TokenSource, api: Url, request: TokenRequest) -> Self {
        Self {
            source,
            origin: api.origin(),
            request: Some(request),
        }
    }
}

/// Whether a request to `uri` is for `origin`: a URI without scheme and authority is, since
/// the inner service picks its destination.
fn bound_to(origin: &Origin, uri: &http::Uri) -> bool {
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return uri.scheme().is_none() && uri.authority().is_none();
    };
    origin.is_tuple()
        && Url::parse(&format!("{scheme}://{authority}/")).is_ok_and(|url| url.origin() == *origin)
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            source: self.source.clone(),
            origin: self.origin.clone(),
            request: self.request.clone(),
        }
    }
}

/// The service made by [`BearerLayer`].
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    source: TokenSource,
    origin: Origin,
    request: Option<TokenRequest>,
}

impl<S, B, RB> Service<Request<B>> for BearerService<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was made ready goes into the future; a fresh clone stays for the next
        // call to poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !bound_to(&self.origin, request.uri()) {
            return Box::pin(async move { inner.call(request).await.map_err(Into::into) });
        }
        let source = self.source.clone();
        let wanted = self.request.clone();
        Box::pin(async move {
            let token = match &wanted {
                Some(wanted) => source.token_for(wanted).await?,
                None => source.token().await?,
            };
            let mut value = HeaderValue::from_str(&token.bearer())?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
            let response = inner.call(request).await.map_err(Into::into)?;
            if response.status() == StatusCode::UNAUTHORIZED {
                source.invalidate(&token);
            }
            Ok(response)
        })
    }
}
