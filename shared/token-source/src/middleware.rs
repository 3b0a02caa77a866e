//! Bearer tokens for a `reqwest_middleware::ClientWithMiddleware`, so that calling code never
//! handles a token: the middleware adds it, and when the API answers 401 it drops the token and
//! tries once more with a new one, as a token revoked or signed with a retired key would need.

use http::Extensions;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};

use crate::source::TokenSource;
use crate::token::{AccessToken, TokenRequest};

/// Adds `Authorization: Bearer …` (RFC 6750 §2.1) from a [`TokenSource`] to every request; on a
/// 401 answer invalidates the token and, when the request body can be cloned, sends the request
/// once more with a new token.
///
/// ```no_run
/// # async fn run(tokens: oauth2_token_source::TokenSource) -> Result<(), Box<dyn std::error::Error>> {
/// use oauth2_token_source::middleware::BearerMiddleware;
///
/// let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(BearerMiddleware::new(tokens))
///     .build();
/// let items = http.get("https://items.example/items").send().await?;
/// # let _ = items;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct BearerMiddleware {
    source: TokenSource,
    request: Option<TokenRequest>,
}

impl BearerMiddleware {
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
        let (again, _) = self.authorized(again).await?;
        next.run(again, extensions).await
    }
}
