//! Bearer tokens for a `tower::Service` of outgoing `http::Request`s (a hyper or tonic client
//! stack): the layer adds the token, and a 401 answer drops it so that the next request carries
//! a new one. It does not resend: a tower body is not generally cloneable.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{HeaderValue, AUTHORIZATION};
use http::{Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

use crate::source::TokenSource;
use crate::token::TokenRequest;

/// The error of a [`BearerService`]: the inner service's, or why no token could be had.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A [`Layer`] adding `Authorization: Bearer …` (RFC 6750 §2.1) from a [`TokenSource`].
///
/// ```no_run
/// # fn run<S>(tokens: oauth2_token_source::TokenSource, inner: S) {
/// use oauth2_token_source::tower::BearerLayer;
/// use tower_layer::Layer;
///
/// let service = BearerLayer::new(tokens).layer(inner);
/// # let _ = service;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BearerLayer {
    source: TokenSource,
    request: Option<TokenRequest>,
}

impl BearerLayer {
    /// Tokens of the source's default request.
    pub fn new(source: TokenSource) -> Self {
        Self {
            source,
            request: None,
        }
    }

    /// Tokens for `request` instead (another scope or audience).
    pub fn with_request(source: TokenSource, request: TokenRequest) -> Self {
        Self {
            source,
            request: Some(request),
        }
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = BearerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerService {
            inner,
            source: self.source.clone(),
            request: self.request.clone(),
        }
    }
}

/// The service made by [`BearerLayer`].
#[derive(Clone, Debug)]
pub struct BearerService<S> {
    inner: S,
    source: TokenSource,
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
