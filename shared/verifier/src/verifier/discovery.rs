//! Finding and fetching what the verifier learns from the issuer: its metadata (RFC 8414, or
//! OpenID Connect Discovery when the issuer publishes only that), then the JWKS it names and
//! the revocation feed it may advertise.
//!
//! Many issuers publish only `/.well-known/openid-configuration`; a verifier that knew only
//! the RFC 8414 location could not be pointed at them. The fallback is taken on a 404 alone:
//! any other failure (a 5xx, a timeout, a TLS error) says the issuer is unwell, not that the
//! document lives elsewhere, and stays a failure. Whichever document answers must name the
//! configured issuer (RFC 8414 §3.3, OpenID Connect Discovery §4.3).

use std::time::Duration;

use reqwest::header::CACHE_CONTROL;
use serde::de::DeserializeOwned;
use url::Url;

use super::config::{Transport, VerifierConfig};
use super::keys::KeySet;

/// A JWKS or metadata document larger than this is refused: a key set is a few kilobytes.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// Why a metadata, JWKS or revocation-feed fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request did not complete (connection, TLS, timeout).
    #[error("request to {url} failed: {source}")]
    Http {
        /// What was asked for.
        url: Url,
        /// Why it failed.
        source: reqwest::Error,
    },
    /// The answer was not a success.
    #[error("{url} answered {status}")]
    Status {
        /// What was asked for.
        url: Url,
        /// The status of the answer.
        status: reqwest::StatusCode,
    },
    /// The answer was larger than any such document should be.
    #[error("{url} sent more than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge {
        /// What was asked for.
        url: Url,
    },
    /// The answer was not the JSON document expected.
    #[error("{url} sent a document that does not parse: {source}")]
    Parse {
        /// What was asked for.
        url: Url,
        /// Why it does not parse.
        source: serde_json::Error,
    },
    /// The metadata speaks for another issuer (RFC 8414 §3.3, OpenID Connect Discovery §4.3).
    #[error("metadata issuer {found} does not match the configured issuer {expected}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The `issuer` of the metadata.
        found: String,
    },
    /// The metadata's `jwks_uri` is not a URL.
    #[error("metadata jwks_uri is not a URL: {0}")]
    BadJwksUri(String),
    /// The metadata's `revocation_feed_endpoint` is not a URL.
    #[error("metadata revocation_feed_endpoint is not a URL: {0}")]
    BadFeedUri(String),
    /// A plain `http://` URL on a host other than loopback, without
    /// [`super::VerifierConfig::allow_http`]: keys fetched without TLS could be swapped.
    #[error("{url} is plain http on a host other than loopback; use https (or allow_http)")]
    Insecure {
        /// The URL refused.
        url: Url,
    },
    /// The feed sent changes before any complete list.
    #[error("{url} sent only changes, but no complete revocation list is held to apply them to")]
    DeltaWithoutBase {
        /// The feed.
        url: Url,
    },
}

/// RFC 8414 §3: the metadata lives under `/.well-known/oauth-authorization-server`, inserted
/// between the host and any path of the issuer.
pub fn metadata_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = issuer.path().trim_end_matches('/');
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// OpenID Connect Discovery 1.0 §4: the provider configuration lives at the issuer followed
/// by `/.well-known/openid-configuration`, after any path of the issuer. Asked for when the
/// document at [`metadata_url`] answers 404.
pub fn openid_configuration_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = issuer.path().trim_end_matches('/');
    url.set_path(&format!("{path}/.well-known/openid-configuration"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// The client the verifier reaches the issuer with, and the timeout of each request: set on
/// the request, so that it holds for a client the service gave as well.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
    timeout: Duration,
    /// [`super::VerifierConfig::allow_http`].
    allow_http: bool,
}

impl Http {
    /// The service's client, or one of the verifier's own: no redirects (a document moved
    /// elsewhere is not followed to a host the issuer does not name), the built-in and native
    /// roots and those of the CA file.
    pub(crate) fn new(config: &VerifierConfig) -> Result<Self, reqwest::Error> {
        let client = match &config.transport {
            Transport::Given(client) => client.clone(),
            Transport::Own { extra_roots } => extra_roots
                .iter()
                .fold(
                    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()),
                    |builder, root| builder.add_root_certificate(root.clone()),
                )
                .build()?,
        };
        Ok(Self {
            client,
            timeout: config.fetch_timeout,
            allow_http: config.allow_http,
        })
    }

    /// A GET of `url`, unless it is plain http on a host other than loopback and that is not
    /// allowed: every URL the verifier fetches (metadata, JWKS, feed, discovered ones too)
    /// passes here.
    fn get(&self, url: &Url) -> Result<reqwest::RequestBuilder, FetchError> {
        if url.scheme() != "https" && !self.allow_http && !super::config::is_loopback(url) {
            return Err(FetchError::Insecure { url: url.clone() });
        }
        Ok(self.client.get(url.clone()).timeout(self.timeout))
    }
}

async fn get(http: &Http, url: &Url) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let response = send(http.get(url)?, url).await?;
    if !response.status().is_success() {
        return Err(FetchError::Status {
            url: url.clone(),
            status: response.status(),
        });
    }
    let max_age = response
        .headers()
        .get(CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_max_age);
    let body = read_limited(response, url, MAX_DOCUMENT_BYTES).await?;
    Ok((body, max_age))
}

async fn send(
    request: reqwest::RequestBuilder,
    url: &Url,
) -> Result<reqwest::Response, FetchError> {
    request.send().await.map_err(|source| FetchError::Http {
        url: url.clone(),
        source,
    })
}

/// The body, refused past `limit` bytes.
async fn read_limited(
    mut response: reqwest::Response,
    url: &Url,
    limit: usize,
) -> Result<Vec<u8>, FetchError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|source| FetchError::Http {
        url: url.clone(),
        source,
    })? {
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge { url: url.clone() });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A GET that may be answered `304 Not Modified` (`None`); any other answer but a success is
/// an error. The body is refused past `limit` bytes.
pub(super) async fn get_unless_not_modified(
    http: &Http,
    url: &Url,
    limit: usize,
) -> Result<Option<Vec<u8>>, FetchError> {
    let response = send(http.get(url)?, url).await?;
    if response.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(None);
    }
    if !response.status().is_success() {
        return Err(FetchError::Status {
            url: url.clone(),
            status: response.status(),
        });
    }
    read_limited(response, url, limit).await.map(Some)
}

/// A metadata document: whichever members a caller reads, and the issuer it speaks for.
trait Metadata: DeserializeOwned {
    fn issuer(&self) -> &str;
}

/// The issuer's metadata: the RFC 8414 document, or the OpenID Connect one when that answers
/// 404; either must speak for the issuer we trust (RFC 8414 §3.3, OpenID Connect Discovery
/// §4.3), compared without a trailing slash.
async fn fetch_metadata<T: Metadata>(http: &Http, issuer: &Url) -> Result<T, FetchError> {
    let rfc8414 = metadata_url(issuer);
    let (url, body) = match get(http, &rfc8414).await {
        Ok((body, _)) => (rfc8414, body),
        Err(FetchError::Status { status, .. }) if status == reqwest::StatusCode::NOT_FOUND => {
            let openid = openid_configuration_url(issuer);
            let (body, _) = get(http, &openid).await?;
            (openid, body)
        }
        Err(err) => return Err(err),
    };
    let metadata: T =
        serde_json::from_slice(&body).map_err(|source| FetchError::Parse { url, source })?;
    if metadata.issuer().trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
        return Err(FetchError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer().to_owned(),
        });
    }
    Ok(metadata)
}

/// Reads the issuer's metadata and returns its `jwks_uri`.
pub(crate) async fn discover_jwks_uri(http: &Http, issuer: &Url) -> Result<Url, FetchError> {
    let metadata: KeysMetadata = fetch_metadata(http, issuer).await?;
    Url::parse(&metadata.jwks_uri).map_err(|_| FetchError::BadJwksUri(metadata.jwks_uri))
}

/// The members of the metadata that locate the key set.
#[derive(serde::Deserialize)]
struct KeysMetadata {
    issuer: String,
    jwks_uri: String,
}

impl Metadata for KeysMetadata {
    fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// The members of the metadata that locate the revocation feed (an extension member).
#[derive(serde::Deserialize)]
struct FeedMetadata {
    issuer: String,
    #[serde(default)]
    revocation_feed_endpoint: Option<String>,
}

impl Metadata for FeedMetadata {
    fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// Reads the issuer's metadata and returns its `revocation_feed_endpoint`, `None` when the
/// issuer advertises no feed.
pub(crate) async fn discover_revocation_feed(
    http: &Http,
    issuer: &Url,
) -> Result<Option<Url>, FetchError> {
    let metadata: FeedMetadata = fetch_metadata(http, issuer).await?;
    metadata
        .revocation_feed_endpoint
        .map(|feed| Url::parse(&feed).map_err(|_| FetchError::BadFeedUri(feed)))
        .transpose()
}

/// Fetches and parses the key set; `max-age` of the answer decides its freshness, clamped.
pub(crate) async fn fetch_keys(
    http: &Http,
    jwks_uri: &Url,
    floor: Duration,
    ceiling: Duration,
) -> Result<KeySet, FetchError> {
    let (body, max_age) = get(http, jwks_uri).await?;
    let fresh_for = freshness(max_age, floor, ceiling);
    KeySet::from_jwks(&body, fresh_for).map_err(|source| FetchError::Parse {
        url: jwks_uri.clone(),
        source,
    })
}

/// How long a key set stays fresh: its `max-age`, at least `floor` (so that a server sending
/// `no-store` is not fetched in a loop) and at most `ceiling` (so that new keys and revocations
/// arrive within a bounded time); `floor` without a `max-age`.
pub fn freshness(max_age: Option<Duration>, floor: Duration, ceiling: Duration) -> Duration {
    max_age.unwrap_or(floor).clamp(floor, ceiling.max(floor))
}

/// `max-age` from a Cache-Control value; `no-store`/`no-cache` count as zero (the floor applies).
pub fn parse_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            max_age = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_well_known_before_the_path_rfc8414_3() {
        let plain = metadata_url(&Url::parse("https://auth.example.com").unwrap());
        assert_eq!(
            plain.as_str(),
            "https://auth.example.com/.well-known/oauth-authorization-server"
        );
        let tenant = metadata_url(&Url::parse("https://example.com/tenant1/").unwrap());
        assert_eq!(
            tenant.as_str(),
            "https://example.com/.well-known/oauth-authorization-server/tenant1"
        );
    }

    #[test]
    fn openid_configuration_url_appends_well_known_after_the_path_oidc_discovery_4() {
        let plain = openid_configuration_url(&Url::parse("https://auth.example.com").unwrap());
        assert_eq!(
            plain.as_str(),
            "https://auth.example.com/.well-known/openid-configuration"
        );
        let tenant = openid_configuration_url(&Url::parse("https://example.com/tenant1/").unwrap());
        assert_eq!(
            tenant.as_str(),
            "https://example.com/tenant1/.well-known/openid-configuration"
        );
    }

    #[test]
    fn max_age_is_honoured_between_the_floor_and_the_ceiling_rfc9111_5_2_2_1() {
        let (floor, ceiling) = (Duration::from_secs(30), Duration::from_secs(3600));
        let fresh = |seconds| freshness(Some(Duration::from_secs(seconds)), floor, ceiling);
        assert_eq!(fresh(300), Duration::from_secs(300));
        assert_eq!(fresh(1), floor, "the floor");
        assert_eq!(fresh(0), floor, "no-store: the floor");
        assert_eq!(fresh(86_400), ceiling, "the ceiling");
        assert_eq!(
            freshness(None, floor, ceiling),
            floor,
            "no max-age: the floor"
        );
        assert_eq!(
            freshness(Some(Duration::from_secs(5)), floor, Duration::from_secs(10)),
            floor,
            "a ceiling below the floor gives way"
        );
    }

    #[test]
    fn max_age_is_read_and_no_store_counts_as_zero() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
