//! Every knob in one `#[non_exhaustive]` struct behind a builder, so that new settings never
//! break a caller, and the defaults suit a fleet of services sharing one issuer.

use std::time::Duration;

use url::Url;

use crate::error::Error;
use crate::secret::ClientSecret;
use crate::token::TokenRequest;

/// Where the token endpoint is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Endpoint {
    /// The token endpoint's URL, given.
    Token(Url),
    /// The issuer's identifier: the token endpoint is the `token_endpoint` of its RFC 8414
    /// metadata (`/.well-known/oauth-authorization-server`, falling back to
    /// `/.well-known/openid-configuration` when that is 404), read once on first use.
    Issuer(Url),
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1): HTTP Basic with the form-encoded id and secret.
    #[default]
    Basic,
    /// `client_secret_post` (RFC 6749 §2.3.1): the id and secret in the form, for issuers that
    /// take nothing else.
    Post,
}

/// The settings of a [`TokenSource`](crate::TokenSource); made with [`Config::builder`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The token endpoint, or the issuer to discover it from.
    pub endpoint: Endpoint,
    /// The client's `client_id`.
    pub client_id: String,
    /// The client's secret.
    pub client_secret: ClientSecret,
    /// How the client authenticates.
    pub client_auth: ClientAuth,
    /// The request made by [`TokenSource::token`](crate::TokenSource::token).
    pub default_request: TokenRequest,
    /// A token is refreshed when about this much of its lifetime remains (default 60 s; at most
    /// half of the lifetime).
    pub refresh_margin: Duration,
    /// The margin varies by up to this much either way, at random per token, so that a fleet
    /// started together does not refresh together (default 15 s; at most half of the margin).
    pub refresh_jitter: Duration,
    /// A token is no longer handed out when less than this remains: the time it needs to reach
    /// the API, and the issuer's one-second rounding of `exp` (default 2 s).
    pub expiry_skew: Duration,
    /// The lifetime assumed for a token answered without `expires_in` (default 5 min).
    pub unknown_lifetime: Duration,
    /// The timeout of each request to the issuer (default 10 s).
    pub timeout: Duration,
    /// How many times a 429 or 503 is retried within one token request (default 3).
    pub max_retries: u32,
    /// The longest `Retry-After` waited for within one token request; a longer one ends the
    /// request with [`Error::Unavailable`] (default 30 s).
    pub max_retry_wait: Duration,
    /// The HTTP client; `None` builds one with [`Config::timeout`] and no redirects.
    pub http: Option<reqwest::Client>,
}

impl Config {
    /// A builder for the client `client_id` with `client_secret`, against `endpoint`.
    pub fn builder(
        endpoint: Endpoint,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> ConfigBuilder {
        ConfigBuilder {
            config: Config {
                endpoint,
                client_id: client_id.into(),
                client_secret,
                client_auth: ClientAuth::Basic,
                default_request: TokenRequest::default(),
                refresh_margin: Duration::from_secs(60),
                refresh_jitter: Duration::from_secs(15),
                expiry_skew: Duration::from_secs(2),
                unknown_lifetime: Duration::from_secs(300),
                timeout: Duration::from_secs(10),
                max_retries: 3,
                max_retry_wait: Duration::from_secs(30),
                http: None,
            },
        }
    }
}

/// Builds a [`Config`]; every setting but the endpoint and credentials has a default.
#[derive(Debug)]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// Authenticates with `client_secret_post` instead of `client_secret_basic`.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.config.client_auth = auth;
        self
    }

    /// The request [`TokenSource::token`](crate::TokenSource::token) makes.
    pub fn default_request(mut self, request: TokenRequest) -> Self {
        self.config.default_request = request;
        self
    }

    /// See [`Config::refresh_margin`].
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.config.refresh_margin = margin;
        self
    }

    /// See [`Config::refresh_jitter`].
    pub fn refresh_jitter(mut self, jitter: Duration) -> Self {
        self.config.refresh_jitter = jitter;
        self
    }

    /// See [`Config::expiry_skew`].
    pub fn expiry_skew(mut self, skew: Duration) -> Self {
        self.config.expiry_skew = skew;
        self
    }

    /// See [`Config::unknown_lifetime`].
    pub fn unknown_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.unknown_lifetime = lifetime;
        self
    }

    /// See [`Config::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// See [`Config::max_retries`].
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.config.max_retries = retries;
        self
    }

    /// See [`Config::max_retry_wait`].
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.config.max_retry_wait = wait;
        self
    }

    /// Uses the caller's HTTP client (its pool, proxy and TLS settings); each token request
    /// still carries [`Config::timeout`].
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.config.http = Some(http);
        self
    }

    /// The configuration.
    pub fn build(self) -> Config {
        self.config
    }
}

impl Config {
    /// The HTTP client to use: the caller's, or one with the timeout and no redirects (a token
    /// endpoint that redirects would carry the credentials elsewhere).
    pub(crate) fn http(&self) -> Result<reqwest::Client, Error> {
        match &self.http {
            Some(http) => Ok(http.clone()),
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(Error::from),
        }
    }
}
