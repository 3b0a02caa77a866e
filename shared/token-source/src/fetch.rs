//! One token request as the issuer sees it: the form, the client authentication, the answer
//! read as RFC 6749 §5.1 or §5.2, and the waits a 429 or 503 asks for. The cache above decides
//! when to call this; this decides nothing about caching.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::config::{without_credentials, ClientAuth, Config};
use crate::error::Error;
use crate::token::{AccessToken, TokenRequest};

/// A token as issued, with the instant the request was sent, from which its lifetime counts.
pub(crate) struct Issued {
    pub(crate) token: AccessToken,
    pub(crate) sent: Instant,
    pub(crate) lifetime: Duration,
}

/// Longer lifetimes are taken as this, so that no instant arithmetic can overflow.
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// A longer `Retry-After` is taken as this: an issuer that asks for more is back within the
/// hour as far as this crate is concerned, and no instant arithmetic can overflow.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

/// `expires_in` in seconds (RFC 6749 §5.1), also when an issuer sends it as a string or with a
/// fraction; `None` when absent or not a non-negative number.
fn lifetime(expires_in: Option<&serde_json::Value>) -> Option<Duration> {
    let seconds = match expires_in? {
        serde_json::Value::Number(number) => number.as_f64()?,
        serde_json::Value::String(text) => text.trim().parse().ok()?,
        _ => return None,
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        seconds.min(MAX_LIFETIME.as_secs_f64()),
    ))
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    error_description: Option<String>,
}

/// Asks `endpoint` for a token, retrying a 429 or 503 up to `config.max_retries` times after
/// its `Retry-After` (or a doubling backoff from 200 ms when there is none).
pub(crate) async fn fetch(
    http: &reqwest::Client,
    config: &Config,
    endpoint: &Url,
    request: &TokenRequest,
) -> Result<Issued, Error> {
    let mut attempt = 0;
    loop {
        match fetch_once(http, config, endpoint, request).await {
            Err(Error::Unavailable {
                status,
                retry_after,
            }) => {
                let wait = retry_after.unwrap_or(Duration::from_millis(200 << attempt.min(8)));
                if attempt >= config.max_retries || wait > config.max_retry_wait {
                    return Err(Error::Unavailable {
                        status,
                        retry_after,
                    });
                }
                tracing::debug!(status, ?wait, attempt, "token endpoint busy; waiting");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn fetch_once(
    http: &reqwest::Client,
    config: &Config,
    endpoint: &Url,
    request: &TokenRequest,
) -> Result<Issued, Error> {
    let mut form = request.form();
    let mut builder = http.post(endpoint.clone()).timeout(config.timeout);
    match config.client_auth {
        ClientAuth::Basic => {
            let header = config.client_secret.basic_header(&config.client_id);
            let mut value = HeaderValue::from_str(&header)
                .map_err(|_| Error::Config("the client id cannot go in a header".into()))?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        ClientAuth::Post => {
            form.push(("client_id", &config.client_id));
            form.push(("client_secret", config.client_secret.expose()));
        }
    }
    let sent = Instant::now();
    let response = builder.form(&form).send().await?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = response.bytes().await?;
    if status == StatusCode::OK {
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| Error::InvalidResponse(format!("{e}")))?;
        if !token.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::InvalidResponse(format!(
                "token_type {:?} is not Bearer",
                token.token_type
            )));
        }
        if token.access_token.is_empty() {
            return Err(Error::InvalidResponse("empty access_token".into()));
        }
        let lifetime = lifetime(token.expires_in.as_ref())
            .unwrap_or(config.unknown_lifetime)
            .min(MAX_LIFETIME);
        return Ok(Issued {
            token: AccessToken::new(&token.access_token),
            sent,
            lifetime,
        });
    }
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        return Err(Error::Unavailable {
            status: status.as_u16(),
            retry_after,
        });
    }
    match serde_json::from_slice::<ErrorResponse>(&body) {
        Ok(refusal) => Err(Error::OAuth {
            status: status.as_u16(),
            error: refusal.error,
            description: refusal.error_description,
        }),
        Err(_) => Err(Error::Status {
            status: status.as_u16(),
        }),
    }
}

/// `Retry-After` in seconds (RFC 9110 §10.2.3), at most [`MAX_RETRY_AFTER`]; an HTTP date is
/// not read.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    let seconds: u64 = text.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    token_endpoint: Url,
}

/// The issuer's `token_endpoint` from its RFC 8414 metadata, or from its OpenID Connect
/// configuration when the RFC 8414 document is 404.
pub(crate) async fn discover(
    http: &reqwest::Client,
    config: &Config,
    issuer: &Url,
) -> Result<Url, Error> {
    for url in metadata_urls(issuer)? {
        let response = http.get(url.clone()).timeout(config.timeout).send().await?;
        if response.status() == StatusCode::NOT_FOUND {
            continue;
        }
        if !response.status().is_success() {
            return Err(Error::Discovery(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        let metadata: Metadata = response
            .json()
            .await
            .map_err(|e| Error::Discovery(format!("{url}: {e}")))?;
        // RFC 8414 §3.3: the metadata must name the issuer it was asked for.
        if metadata.issuer.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
            return Err(Error::Discovery(format!(
                "{url} names the issuer {:?}",
                metadata.issuer
            )));
        }
        // The client secret goes to this URL: the issuer's own https rule applies to it.
        config
            .check_transport(&metadata.token_endpoint)
            .map_err(|problem| {
                Error::Discovery(format!(
                    "{} names an unsafe token_endpoint: {problem}",
                    without_credentials(&url)
                ))
            })?;
        return Ok(metadata.token_endpoint);
    }
    Err(Error::Discovery(format!("{issuer} publishes no metadata")))
}

/// RFC 8414 §3.1 puts the well-known segment before the issuer's path; OpenID Connect
/// Discovery §4 appends it to the path. For an issuer without a path both are the same place.
fn metadata_urls(issuer: &Url) -> Result<[Url; 2], Error> {
    let path = issuer.path().trim_end_matches('/');
    let at = |suffix: &str| {
        let mut url = issuer.clone();
        url.set_path(suffix);
        url.set_query(None);
        url
    };
    if issuer.cannot_be_a_base() {
        return Err(Error::Config(format!("{issuer} is not an issuer URL")));
    }
    Ok([
        at(&format!("/.well-known/oauth-authorization-server{path}")),
        at(&format!("{path}/.well-known/openid-configuration")),
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn expires_in_is_read_leniently_rfc6749_5_1() {
        let read = |json: &str| lifetime(Some(&serde_json::from_str(json).unwrap()));
        assert_eq!(read("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(read("\"3600\""), Some(Duration::from_secs(3600)));
        assert_eq!(read("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(read("18446744073709551615"), Some(MAX_LIFETIME));
        assert_eq!(read("-1"), None);
        assert_eq!(read("\"soon\""), None);
        assert_eq!(lifetime(None), None);
    }

    #[test]
    fn retry_after_is_capped_at_an_hour_rfc9110_10_2_3() {
        let read = |value: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(RETRY_AFTER, value.parse().unwrap());
            retry_after(&headers)
        };
        assert_eq!(read("120"), Some(Duration::from_secs(120)));
        assert_eq!(read("18446744073709551615"), Some(MAX_RETRY_AFTER));
        assert_eq!(read("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(read("-5"), None);
    }

    #[test]
    fn metadata_urls_follow_rfc8414_3_1_and_oidc_discovery() {
        let [rfc, oidc] =
            metadata_urls(&"https://issuer.test/tenant/one".parse().unwrap()).unwrap();
        assert_eq!(
            rfc.as_str(),
            "https://issuer.test/.well-known/oauth-authorization-server/tenant/one"
        );
        assert_eq!(
            oidc.as_str(),
            "https://issuer.test/tenant/one/.well-known/openid-configuration"
        );
        let [rfc, _] = metadata_urls(&"https://issuer.test/".parse().unwrap()).unwrap();
        assert_eq!(
            rfc.as_str(),
            "https://issuer.test/.well-known/oauth-authorization-server"
        );
    }
}
