//! Finding and fetching what the verifier learns from the issuer: RFC 8414 metadata, then the
//! JWKS it names and the revocation feed it may advertise.

use std::time::Duration;

use reqwest::header::CACHE_CONTROL;
use url::Url;

use super::keys::KeySet;

/// A JWKS or metadata document larger than this is refused: a key set is a few kilobytes.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request to {url} failed: {source}")]
    Http { url: Url, source: reqwest::Error },
    #[error("{url} answered {status}")]
    Status {
        url: Url,
        status: reqwest::StatusCode,
    },
    #[error("{url} sent more than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: Url },
    #[error("{url} sent a document that does not parse: {source}")]
    Parse { url: Url, source: serde_json::Error },
    #[error("metadata issuer {found} does not match the configured issuer {expected}")]
    IssuerMismatch { expected: String, found: String },
    #[error("metadata jwks_uri is not a URL: {0}")]
    BadJwksUri(String),
    #[error("metadata revocation_feed_endpoint is not a URL: {0}")]
    BadFeedUri(String),
    #[error("{url} sent only changes, but no complete revocation list is held to apply them to")]
    DeltaWithoutBase { url: Url },
}

/// RFC 8414 §3: the metadata lives under `/.well-known/oauth-authorization-server`, inserted
/// between the host and any path of the issuer.
pub fn metadata_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = issuer.path().trim_end_matches('/');
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url.set_query(None);
    url
}

async fn get(
    client: &reqwest::Client,
    url: &Url,
) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let response = send(client.get(url.clone()), url).await?;
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
    client: &reqwest::Client,
    url: &Url,
    limit: usize,
) -> Result<Option<Vec<u8>>, FetchError> {
    let response = send(client.get(url.clone()), url).await?;
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

/// Reads the issuer's metadata and returns its `jwks_uri`, checking that the metadata speaks
/// for the issuer we trust (RFC 8414 §3.3).
pub async fn discover_jwks_uri(client: &reqwest::Client, issuer: &Url) -> Result<Url, FetchError> {
    let url = metadata_url(issuer);
    let (body, _) = get(client, &url).await?;
    let metadata: KeysMetadata =
        serde_json::from_slice(&body).map_err(|source| FetchError::Parse { url, source })?;
    if metadata.issuer.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
        return Err(FetchError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer,
        });
    }
    Url::parse(&metadata.jwks_uri).map_err(|_| FetchError::BadJwksUri(metadata.jwks_uri))
}

/// The members of the metadata that locate the key set.
#[derive(serde::Deserialize)]
struct KeysMetadata {
    issuer: String,
    jwks_uri: String,
}

/// The members of the metadata that locate the revocation feed (an extension member).
#[derive(serde::Deserialize)]
struct FeedMetadata {
    issuer: String,
    #[serde(default)]
    revocation_feed_endpoint: Option<String>,
}

/// Reads the issuer's metadata and returns its `revocation_feed_endpoint`, `None` when the
/// issuer advertises no feed; the metadata must speak for the issuer we trust.
pub async fn discover_revocation_feed(
    client: &reqwest::Client,
    issuer: &Url,
) -> Result<Option<Url>, FetchError> {
    let url = metadata_url(issuer);
    let (body, _) = get(client, &url).await?;
    let metadata: FeedMetadata =
        serde_json::from_slice(&body).map_err(|source| FetchError::Parse { url, source })?;
    if metadata.issuer.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
        return Err(FetchError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer,
        });
    }
    metadata
        .revocation_feed_endpoint
        .map(|feed| Url::parse(&feed).map_err(|_| FetchError::BadFeedUri(feed)))
        .transpose()
}

/// Fetches and parses the key set; `max-age` of the answer decides its freshness, clamped.
pub async fn fetch_keys(
    client: &reqwest::Client,
    jwks_uri: &Url,
    floor: Duration,
    ceiling: Duration,
) -> Result<KeySet, FetchError> {
    let (body, max_age) = get(client, jwks_uri).await?;
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
