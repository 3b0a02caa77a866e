//! Settings: the defaults the README's table gives, then the TOML file named by `--config`, then
//! `RS_*` environment variables, then command-line flags. Every number is checked against a
//! documented range, so that a mistake stops the start with one line naming the setting and no
//! later arithmetic on a setting can overflow.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
pub use server_plumbing::settings::Range;
use server_plumbing::settings::{check_ranges, layered, widen, DAY, HOUR, YEAR};
use url::Url;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Separate address for `/metrics`, `/livez` and `/readyz`; when set, `/metrics` leaves
    /// the public address.
    pub admin_listen: Option<SocketAddr>,
    /// Expected `iss`; keys are found through its RFC 8414 metadata.
    pub issuer: Url,
    /// Overrides discovery of the key set.
    pub jwks_url: Option<Url>,
    /// Overrides discovery of the revocation feed (a resource server that cannot read the
    /// issuer's metadata at `issuer`, such as one fetching keys in-cluster).
    pub revocation_feed_url: Option<Url>,
    /// Expected `aud`.
    pub audience: String,
    /// Token endpoint that Swagger UI logs in through; default `ISSUER/token`.
    pub token_url: Option<Url>,
    /// `text` or `json`.
    pub log_format: String,
    /// Seconds given to in-flight requests at shutdown.
    pub shutdown_timeout: u64,
    /// Longest bearer token accepted, bytes; longer ones are refused unparsed.
    pub max_token_bytes: usize,
    /// Seconds a client has to send a request head; also how long an idle connection stays open.
    pub header_read_timeout: u64,
    /// Largest request head (request line and header fields), bytes.
    pub max_header_bytes: usize,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Least seconds a fetched key set counts as fresh, whatever its `Cache-Control` says.
    pub jwks_min_refresh: u64,
    /// Most seconds a fetched key set counts as fresh, whatever its `Cache-Control` says.
    pub jwks_max_refresh: u64,
    /// At most one key fetch per this many seconds is caused by tokens naming an unknown `kid`.
    pub unknown_kid_cooldown: u64,
    /// Verified tokens remembered until they expire or the keys change (about 1 KiB each);
    /// 0 verifies every request afresh.
    pub token_cache_capacity: usize,
    /// Seconds a key set may stay in use past its freshness while the issuer cannot be reached;
    /// then tokens are refused with 503 (a key revoked meanwhile would still verify). 0: no
    /// bound.
    pub jwks_max_stale: u64,
    /// Seconds between polls of the issuer's revocation feed (found through its metadata); a
    /// revocation is refused here within this time. 0: off.
    pub revocation_poll: u64,
    /// Seconds without an answer from the revocation feed after which the list held is stale:
    /// `/readyz` answers 503 and, failing closed, tokens are refused.
    pub revocation_max_stale: u64,
    /// Refuse every token with 503 while the revocation list is missing or stale, instead of
    /// judging tokens on the list held.
    pub revocation_fail_closed: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            admin_listen: None,
            issuer: default_issuer(),
            jwks_url: None,
            revocation_feed_url: None,
            audience: "api".into(),
            token_url: None,
            log_format: "text".into(),
            shutdown_timeout: 20,
            max_token_bytes: oauth2_jwt_verifier::DEFAULT_MAX_TOKEN_BYTES,
            header_read_timeout: 10,
            max_header_bytes: 16 * 1024,
            max_connections: 4096,
            jwks_min_refresh: 30,
            jwks_max_refresh: 3600,
            unknown_kid_cooldown: 10,
            token_cache_capacity: oauth2_jwt_verifier::DEFAULT_TOKEN_CACHE_CAPACITY,
            jwks_max_stale: oauth2_jwt_verifier::DEFAULT_MAX_STALE.as_secs(),
            revocation_poll: oauth2_jwt_verifier::DEFAULT_REVOCATION_POLL.as_secs(),
            revocation_max_stale: oauth2_jwt_verifier::DEFAULT_REVOCATION_MAX_STALE.as_secs(),
            revocation_fail_closed: false,
        }
    }
}

#[allow(clippy::expect_used)] // a constant that is known to parse
fn default_issuer() -> Url {
    Url::parse("http://127.0.0.1:8000").expect("the default issuer is a URL")
}

const ENV_PREFIX: &str = "RS_";
pub const KNOWN: &[&str] = &[
    "listen",
    "admin_listen",
    "issuer",
    "jwks_url",
    "revocation_feed_url",
    "audience",
    "token_url",
    "log_format",
    "shutdown_timeout",
    "max_token_bytes",
    "header_read_timeout",
    "max_header_bytes",
    "max_connections",
    "jwks_min_refresh",
    "jwks_max_refresh",
    "unknown_kid_cooldown",
    "token_cache_capacity",
    "jwks_max_stale",
    "revocation_poll",
    "revocation_max_stale",
    "revocation_fail_closed",
];

/// Every numeric setting's range: a floor the protocol or the HTTP stack needs, a ceiling no
/// deployment needs, and far from overflow wherever settings are added to times.
pub const RANGES: &[Range] = &[
    Range::new("shutdown_timeout", 0, HOUR),
    // At most RS_MAX_HEADER_BYTES as well (checked below).
    Range::new("max_token_bytes", 256, 1024 * 1024),
    Range::new("header_read_timeout", 1, HOUR),
    Range::new(
        "max_header_bytes",
        server_plumbing::serve::MIN_HEADER_BYTES as u64,
        1024 * 1024,
    ),
    Range::new("max_connections", 1, 1_048_576),
    Range::new("jwks_min_refresh", 1, DAY),
    // At least RS_JWKS_MIN_REFRESH as well (checked below).
    Range::new("jwks_max_refresh", 1, DAY),
    Range::new("unknown_kid_cooldown", 1, HOUR),
    Range::new("token_cache_capacity", 0, 1_048_576),
    Range::new("jwks_max_stale", 0, YEAR),
    Range::new("revocation_poll", 0, HOUR),
    // At least RS_REVOCATION_POLL as well (checked below).
    Range::new("revocation_max_stale", 1, DAY),
];

/// Settings given as command-line flags; they win over the file and the environment.
#[derive(Clone, Debug, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// Address to bind (RS_LISTEN).
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Expected issuer (RS_ISSUER).
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// JWKS URL, skipping discovery (RS_JWKS_URL).
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Expected audience (RS_AUDIENCE).
    #[arg(long, value_name = "AUD")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Settings {
    pub fn load(config: Option<&Path>) -> Result<Self, String> {
        Self::load_with(config, &Overrides::default())
    }

    /// Defaults, then `config`, then `RS_*` variables, then the flags in `overrides`.
    pub fn load_with(config: Option<&Path>, overrides: &Overrides) -> Result<Self, String> {
        let figment = layered(&Settings::default(), config, ENV_PREFIX, KNOWN, overrides)?;
        let settings: Settings = figment.extract().map_err(|err| {
            let name = err.path.last().map_or_else(String::new, |key| {
                format!("{ENV_PREFIX}{}: ", key.to_uppercase())
            });
            format!("{name}{}", err.kind)
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every number against [`RANGES`] and the settings that must agree with each other.
    /// `load` calls it, and so does the server before it starts, whoever built the settings.
    pub fn validate(&self) -> Result<(), String> {
        check_ranges(ENV_PREFIX, RANGES, &self.numbers())?;
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err("RS_LOG_FORMAT: must be text or json".into());
        }
        if self.audience.trim().is_empty() {
            return Err("RS_AUDIENCE: must not be empty".into());
        }
        if self.max_token_bytes > self.max_header_bytes {
            return Err("RS_MAX_TOKEN_BYTES: must not exceed RS_MAX_HEADER_BYTES".into());
        }
        if self.jwks_max_refresh < self.jwks_min_refresh {
            return Err("RS_JWKS_MAX_REFRESH: must be at least RS_JWKS_MIN_REFRESH".into());
        }
        // Each poll comes a poll interval after the last answer, plus the request's own time:
        // with less than twice the interval, a healthy list would turn stale between polls.
        if self.revocation_max_stale < self.revocation_poll.saturating_mul(2) {
            return Err(
                "RS_REVOCATION_MAX_STALE: must be at least twice RS_REVOCATION_POLL".into(),
            );
        }
        Ok(())
    }

    /// Every numeric setting by name, widened to `u64`.
    fn numbers(&self) -> [(&'static str, u64); 12] {
        [
            ("shutdown_timeout", self.shutdown_timeout),
            ("max_token_bytes", widen(self.max_token_bytes)),
            ("header_read_timeout", self.header_read_timeout),
            ("max_header_bytes", widen(self.max_header_bytes)),
            ("max_connections", widen(self.max_connections)),
            ("jwks_min_refresh", self.jwks_min_refresh),
            ("jwks_max_refresh", self.jwks_max_refresh),
            ("unknown_kid_cooldown", self.unknown_kid_cooldown),
            ("token_cache_capacity", widen(self.token_cache_capacity)),
            ("jwks_max_stale", self.jwks_max_stale),
            ("revocation_poll", self.revocation_poll),
            ("revocation_max_stale", self.revocation_max_stale),
        ]
    }

    /// The per-connection bounds handed to the accept loop.
    pub fn connection_limits(&self) -> server_plumbing::serve::ConnectionLimits {
        server_plumbing::serve::ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout),
            max_header_bytes: self.max_header_bytes,
            ..Default::default()
        }
    }

    /// The verifier's settings: issuer, audience, the key-refresh bounds and the revocation
    /// feed's, checked by the verifier's builder (after [`Settings::validate`], which checks
    /// the same rules with the settings' names, it refuses nothing).
    pub fn verifier_config(
        &self,
    ) -> Result<oauth2_jwt_verifier::VerifierConfig, oauth2_jwt_verifier::ConfigError> {
        use std::time::Duration;
        let mut builder = oauth2_jwt_verifier::VerifierConfig::builder(
            self.issuer.clone(),
            self.audience.clone(),
        )
        .min_refresh(Duration::from_secs(self.jwks_min_refresh))
        .max_refresh(Duration::from_secs(self.jwks_max_refresh))
        .unknown_kid_cooldown(Duration::from_secs(self.unknown_kid_cooldown))
        .max_token_bytes(self.max_token_bytes)
        .token_cache_capacity(self.token_cache_capacity)
        .max_stale((self.jwks_max_stale > 0).then(|| Duration::from_secs(self.jwks_max_stale)))
        .revocation_poll(Duration::from_secs(self.revocation_poll))
        .revocation_max_stale(Duration::from_secs(self.revocation_max_stale))
        .revocation_fail_closed(self.revocation_fail_closed)
        // The operator names these URLs; plain http inside a cluster (RS_JWKS_URL to the
        // auth-server's service) is a deployment's choice, which `Application` warns about.
        .allow_http(true);
        if let Some(jwks_url) = &self.jwks_url {
            builder = builder.jwks_url(jwks_url.clone());
        }
        if let Some(feed) = &self.revocation_feed_url {
            builder = builder.revocation_feed_url(feed.clone());
        }
        builder.build()
    }

    /// The configured issuer and JWKS URLs that are plain http off loopback: keys fetched
    /// over them could be swapped on the way. Allowed (a cluster's own network may be trusted),
    /// and said at start.
    pub fn plain_http_urls(&self) -> Vec<&Url> {
        std::iter::once(&self.issuer)
            .chain(self.jwks_url.as_ref())
            .chain(self.revocation_feed_url.as_ref())
            .filter(|url| url.scheme() == "http" && !oauth2_jwt_verifier::is_loopback(url))
            .collect()
    }

    /// Where `/readyz` is asked by `resource-server healthcheck`: the admin address when set.
    pub fn health_addr(&self) -> SocketAddr {
        server_plumbing::healthcheck::reachable(self.admin_listen.unwrap_or(self.listen))
    }

    pub fn token_url(&self) -> String {
        self.token_url.as_ref().map_or_else(
            || format!("{}/token", self.issuer.as_str().trim_end_matches('/')),
            Url::to_string,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_numeric_setting_has_one_range_and_the_readme_table_states_it() {
        let readme = include_str!("../../README.md");
        let numbers = Settings::default().numbers();
        let disagreements =
            server_plumbing::settings::readme_disagreements(readme, ENV_PREFIX, RANGES, &numbers);
        assert!(disagreements.is_empty(), "{disagreements:#?}");
    }

    #[test]
    fn out_of_range_numbers_are_refused_with_one_line_naming_the_setting() {
        let defaults = Settings::default();
        assert!(defaults.validate().is_ok());
        let unrefused =
            server_plumbing::settings::unrefused(&defaults, ENV_PREFIX, RANGES, Settings::validate);
        assert!(unrefused.is_empty(), "{unrefused:#?}");
    }

    #[test]
    fn the_staleness_bound_reaches_the_verifier_and_0_means_none() {
        let config = Settings::default().verifier_config().unwrap();
        assert_eq!(
            config.max_stale,
            Some(std::time::Duration::from_secs(86_400))
        );
        let unbounded = Settings {
            jwks_max_stale: 0,
            ..Settings::default()
        };
        assert_eq!(unbounded.verifier_config().unwrap().max_stale, None);
    }

    #[test]
    fn the_revocation_feed_settings_reach_the_verifier() {
        let config = Settings::default().verifier_config().unwrap();
        assert_eq!(
            (
                config.revocation_poll.as_secs(),
                config.revocation_max_stale.as_secs(),
                config.revocation_fail_closed
            ),
            (5, 300, false)
        );
        let set = Settings {
            revocation_poll: 0,
            revocation_max_stale: 60,
            revocation_fail_closed: true,
            ..Settings::default()
        };
        let config = set.verifier_config().unwrap();
        assert_eq!(
            (
                config.revocation_poll,
                config.revocation_max_stale.as_secs(),
                config.revocation_fail_closed
            ),
            (std::time::Duration::ZERO, 60, true)
        );
        let below = Settings {
            revocation_poll: 30,
            revocation_max_stale: 59,
            ..Settings::default()
        };
        assert_eq!(
            below.validate(),
            Err("RS_REVOCATION_MAX_STALE: must be at least twice RS_REVOCATION_POLL".into())
        );
        let twice = Settings {
            revocation_poll: 30,
            revocation_max_stale: 60,
            ..Settings::default()
        };
        assert_eq!(twice.validate(), Ok(()));
    }
}
