//! Bearer tokens for a `reqwest_middleware::ClientWithMiddleware`, so that calling code never
//! handles a token: the middleware adds it, and when the API answers 401 it drops the token and
//! tries once more with a new one, as a token revoked or signed with a retired key would need.
//!
//! The middleware is bound to the origin of the API the tokens are for: a client shared with
//! calls elsewhere (another API, a webhook, a third party) sends those without the token.

use http::Extensions;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};
use url::{Origin, Url};

use crate::source::TokenSource;
use crate::token::{AccessToken, TokenRequest};

/// Adds `Authorization: Bearer …` (RFC 6750 §2.1) from a [`TokenSource`] to every request to
/// one origin (scheme, host and port); requests to any other origin go out untouched. On a 401
/// answer it invalidates the token and, when the request body can be cloned and a new token
/// was had, sends the request once more with it (a token fetched within
/// [`Config::min_invalidate_interval`](crate::Config::min_invalidate_interval) is kept, and
/// the 401 is the answer).
///
/// Redirects are the inner `reqwest::Client`'s: reqwest drops `Authorization` when a redirect
/// changes host or port, not when only the scheme changes; a client with
/// `reqwest::redirect::Policy::none()` keeps the token on the origin given here.
///
/// ```no_run
/// # async fn run(tokens: oauth2_token_source::TokenSource) -> Result<(), Box<dyn std::error::Error>> {
/// use oauth2_token_source::middleware::BearerMiddleware;
///
/// let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(BearerMiddleware::new(tokens, "https://items.example".parse()?))
///     .build();
/// let items = http.get("https://items.example/items").send().await?; // with the token
/// let other = http.get("https://elsewhere.example/").send().await?; // without
/// # let _ = (items, other);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BearerMiddleware {
    source: TokenSource,
    origin: Origin,
    request: Option<TokenRequest>,
}

impl BearerMiddleware {
    /// Tokens of the source's default request, for requests to the origin of `api` (its
    /// scheme, host and port; the path is ignored). An `api` without an `http` or `https`
    /// origin matches no request.
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

    async fn token(&self) -> Result<AccessToken, crate::Error> {
        match &self.request {
            Some(request) => self.source.token_for(request).await,
            None => self.source.token().await,
        }
    }

    async fn authorized(
        &self,
        mut request: Request,
    ) -> reqwest_middleware::Result<(Request, AccessToken)> {
        let token = self
            .token()
            .await
            .map_err(reqwest_middleware::Error::middleware)?;
        let mut value = HeaderValue::from_str(&token.bearer())
            .map_err(reqwest_middleware::Error::middleware)?;
        value.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, value);
        Ok((request, token))
    }
}

#[async_trait::async_trait]
impl Middleware for BearerMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.origin.is_tuple() || request.url().origin() != self.origin {
            return next.run(request, extensions).await;
        }
        let again = request.try_clone();
        let (request, token) = self.authorized(request).await?;
        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        self.source.invalidate(&token);
        let Some(again) = again else {
            return Ok(response);
        };
        let (again, retried) = self.authorized(again).await?;
        if retried == token {
            // Kept (fetched too recently to drop): the same token would get the same answer.
            return Ok(response);
        }
        next.run(again, extensions).await
    }
}
