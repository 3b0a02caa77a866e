//! Every knob in one `#[non_exhaustive]` struct behind a builder, so that new settings never
//! break a caller, and the defaults suit a fleet of services sharing one issuer.

use std::net::IpAddr;
use std::time::Duration;

use url::{Host, Url};

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
    /// A token younger than this is not dropped by
    /// [`TokenSource::invalidate`](crate::TokenSource::invalidate), so that an API that
    /// answers 401 to every token (a wrong audience, a misconfigured key) costs the issuer at
    /// most one request per slot per interval rather than one per API call (default 5 s;
    /// zero turns the limit off).
    pub min_invalidate_interval: Duration,
    /// Whether the token endpoint and the issuer may be plain `http` on hosts other than
    /// loopback (default `false`); see [`ConfigBuilder::allow_http`].
    pub allow_http: bool,
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
                min_invalidate_interval: Duration::from_secs(5),
                allow_http: false,
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

    /// See [`Config::min_invalidate_interval`]; `Duration::ZERO` turns the limit off.
    pub fn min_invalidate_interval(mut self, interval: Duration) -> Self {
        self.config.min_invalidate_interval = interval;
        self
    }

    /// Allows a plain `http` token endpoint or issuer on any host. Without it the client
    /// secret only goes out over `https`, or over `http` to a loopback host (`127.0.0.0/8`,
    /// `::1`, `localhost`), and [`TokenSource::new`](crate::TokenSource::new) (or discovery,
    /// for a discovered `token_endpoint`) refuses anything else. Meant for private networks
    /// where TLS terminates in front of the issuer; anyone on the path sees the secret.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.config.allow_http = allow;
        self
    }

    /// Uses the caller's HTTP client (its pool, proxy and TLS settings); each token request
    /// still carries [`Config::timeout`].
    ///
    /// That client follows its own redirect policy, and a redirect carries the token request
    /// along: reqwest drops `Authorization` when a redirect changes host or port, but keeps it
    /// when only the scheme changes (`https` to `http` on the same host), and a
    /// `client_secret_post` form is resent to wherever the redirect points. A client built
    /// with `reqwest::redirect::Policy::none()` is recommended; the client this crate builds
    /// when none is given follows no redirects.
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
    /// Refuses an endpoint that would carry the client secret in the clear; the message names
    /// the URL without any credentials in it.
    pub(crate) fn check_transport(&self, url: &Url) -> Result<(), String> {
        let plain_allowed = self.allow_http || is_loopback(url);
        match url.scheme() {
            "https" => Ok(()),
            "http" if plain_allowed => Ok(()),
            "http" => Err(format!(
                "{} is plain http on a host that is not loopback: the client secret would go \
                 out unencrypted (use https, or ConfigBuilder::allow_http on a private network)",
                without_credentials(url)
            )),
            scheme => Err(format!(
                "{} has the scheme {scheme:?}, not https",
                without_credentials(url)
            )),
        }
    }

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

/// Whether `url` names a loopback host: `127.0.0.0/8`, `::1` or `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `url` with any user name and password removed, for messages.
pub(crate) fn without_credentials(url: &Url) -> String {
    let mut url = url.clone();
    // Both fail only for URLs that cannot have credentials.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn check(url: &str, allow_http: bool) -> Result<(), String> {
        let url: Url = url.parse().unwrap();
        Config::builder(Endpoint::Token(url.clone()), "svc", ClientSecret::new("s"))
            .allow_http(allow_http)
            .build()
            .check_transport(&url)
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback_or_when_allowed() {
        for url in [
            "https://issuer.test/token",
            "http://127.0.0.1:8000/token",
            "http://127.1.2.3/token",
            "http://[::1]:8000/token",
            "http://localhost:8000/token",
            "http://LOCALHOST/token",
        ] {
            assert_eq!(check(url, false), Ok(()), "{url}");
        }
        for url in [
            "http://issuer.test/token",
            "http://10.0.0.1/token",
            "http://localhost.issuer.test/token",
            "http://[::2]/token",
            "ftp://issuer.test/token",
        ] {
            assert!(check(url, false).is_err(), "{url}");
        }
        assert_eq!(check("http://issuer.test/token", true), Ok(()));
        let message = check("http://user:pw@issuer.test/token", false).unwrap_err();
        assert!(message.contains("http://issuer.test/token"), "{message}");
        assert!(
            !message.contains("pw") && !message.contains("user"),
            "{message}"
        );
    }
}
