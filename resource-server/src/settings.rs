//! Settings: the defaults the README's table gives, then the TOML file named by `--config`, then
//! `RS_*` environment variables, then command-line flags. Every number is checked against a
//! documented range, so that a mistake stops the start with one line naming the setting and no
//! later arithmetic on a setting can overflow.

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Expected `iss`; keys are found through its RFC 8414 metadata.
    pub issuer: Url,
    /// Overrides discovery of the key set.
    pub jwks_url: Option<Url>,
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
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8001)),
            issuer: default_issuer(),
            jwks_url: None,
            audience: "api".into(),
            token_url: None,
            log_format: "text".into(),
            shutdown_timeout: 20,
            max_token_bytes: shared::verifier::DEFAULT_MAX_TOKEN_BYTES,
            header_read_timeout: 10,
            max_header_bytes: 16 * 1024,
            max_connections: 4096,
            jwks_min_refresh: 30,
            jwks_max_refresh: 3600,
            unknown_kid_cooldown: 10,
            token_cache_capacity: shared::verifier::DEFAULT_TOKEN_CACHE_CAPACITY,
            jwks_max_stale: shared::verifier::DEFAULT_MAX_STALE.as_secs(),
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
    "issuer",
    "jwks_url",
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
];

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;
const YEAR: u64 = 365 * DAY;

/// The range of a numeric setting, inclusive, as the README's settings table states it.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// The field name (`jwks_max_stale` is `RS_JWKS_MAX_STALE`).
    pub name: &'static str,
    pub min: u64,
    pub max: u64,
}

/// Every numeric setting's range: a floor the protocol or the HTTP stack needs, a ceiling no
/// deployment needs, and far from overflow wherever settings are added to times.
pub const RANGES: &[Range] = &[
    range("shutdown_timeout", 0, HOUR),
    // At most RS_MAX_HEADER_BYTES as well (checked below).
    range("max_token_bytes", 256, 1024 * 1024),
    range("header_read_timeout", 1, HOUR),
    range(
        "max_header_bytes",
        shared::serve::MIN_HEADER_BYTES as u64,
        1024 * 1024,
    ),
    range("max_connections", 1, 1_048_576),
    range("jwks_min_refresh", 1, DAY),
    // At least RS_JWKS_MIN_REFRESH as well (checked below).
    range("jwks_max_refresh", 1, DAY),
    range("unknown_kid_cooldown", 1, HOUR),
    range("token_cache_capacity", 0, 1_048_576),
    range("jwks_max_stale", 0, YEAR),
];

const fn range(name: &'static str, min: u64, max: u64) -> Range {
    Range { name, min, max }
}

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
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config {
            if !path.is_file() {
                return Err(format!("config file {} does not exist", path.display()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Env::prefixed(ENV_PREFIX).only(KNOWN))
            .merge(Serialized::defaults(overrides));
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
        for (name, value) in self.numbers() {
            if let Some(range) = RANGES.iter().find(|range| range.name == name) {
                if !(range.min..=range.max).contains(&value) {
                    return Err(format!(
                        "{ENV_PREFIX}{}: {value} is out of range; must be from {} to {}",
                        name.to_uppercase(),
                        range.min,
                        range.max
                    ));
                }
            }
        }
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
        Ok(())
    }

    /// Every numeric setting by name, widened to `u64` (a `usize` beyond it saturates, and is
    /// out of range anyway).
    fn numbers(&self) -> [(&'static str, u64); 10] {
        let wide = |value: usize| u64::try_from(value).unwrap_or(u64::MAX);
        [
            ("shutdown_timeout", self.shutdown_timeout),
            ("max_token_bytes", wide(self.max_token_bytes)),
            ("header_read_timeout", self.header_read_timeout),
            ("max_header_bytes", wide(self.max_header_bytes)),
            ("max_connections", wide(self.max_connections)),
            ("jwks_min_refresh", self.jwks_min_refresh),
            ("jwks_max_refresh", self.jwks_max_refresh),
            ("unknown_kid_cooldown", self.unknown_kid_cooldown),
            ("token_cache_capacity", wide(self.token_cache_capacity)),
            ("jwks_max_stale", self.jwks_max_stale),
        ]
    }

    /// The per-connection bounds handed to the accept loop.
    pub fn connection_limits(&self) -> shared::serve::ConnectionLimits {
        shared::serve::ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout),
            max_header_bytes: self.max_header_bytes,
            ..Default::default()
        }
    }

    /// The verifier's settings: issuer, audience and the key-refresh bounds.
    pub fn verifier_config(&self) -> shared::VerifierConfig {
        let mut config = shared::VerifierConfig::new(self.issuer.clone(), self.audience.clone());
        config.jwks_url = self.jwks_url.clone();
        config.min_refresh = std::time::Duration::from_secs(self.jwks_min_refresh);
        config.max_refresh = std::time::Duration::from_secs(self.jwks_max_refresh);
        config.unknown_kid_cooldown = std::time::Duration::from_secs(self.unknown_kid_cooldown);
        config.max_token_bytes = self.max_token_bytes;
        config.token_cache_capacity = self.token_cache_capacity;
        config.max_stale =
            (self.jwks_max_stale > 0).then(|| std::time::Duration::from_secs(self.jwks_max_stale));
        config
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
        assert_eq!(numbers.len(), RANGES.len());
        for (name, _) in numbers {
            let ranges = RANGES.iter().filter(|r| r.name == name).count();
            assert_eq!(ranges, 1, "{name} needs exactly one range");
        }
        for range in RANGES {
            let variable = format!("`{ENV_PREFIX}{}`", range.name.to_uppercase());
            let row = readme
                .lines()
                .find(|line| line.starts_with(&format!("| {variable} |")))
                .unwrap_or_else(|| panic!("no README row for {variable}"));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let stated = format!("{}–{}", range.min, range.max);
            assert!(
                cells[3].starts_with(&stated),
                "README states {:?} for {variable}, the code {stated}",
                cells[3]
            );
        }
    }

    #[test]
    fn out_of_range_numbers_are_refused_with_one_line_naming_the_setting() {
        let defaults = Settings::default();
        assert!(defaults.validate().is_ok());
        for range in RANGES {
            let variable = format!("{ENV_PREFIX}{}", range.name.to_uppercase());
            let mut outside = vec![range.max + 1, u64::MAX];
            if range.min > 0 {
                outside.push(range.min - 1);
            }
            for value in outside {
                let settings: Settings = Figment::from(Serialized::defaults(&defaults))
                    .merge(Serialized::default(range.name, value))
                    .extract()
                    .unwrap();
                let err = settings.validate().expect_err(&variable);
                assert!(
                    err.starts_with(&format!("{variable}: {value} is out of range")),
                    "{variable}={value}: {err}"
                );
                assert_eq!(err.lines().count(), 1, "{err}");
            }
        }
    }

    #[test]
    fn the_staleness_bound_reaches_the_verifier_and_0_means_none() {
        let config = Settings::default().verifier_config();
        assert_eq!(
            config.max_stale,
            Some(std::time::Duration::from_secs(86_400))
        );
        let unbounded = Settings {
            jwks_max_stale: 0,
            ..Settings::default()
        };
        assert_eq!(unbounded.verifier_config().max_stale, None);
    }
}
