//! Settings: the defaults the README's tables give, then the TOML file named by `--config`, then
//! `AUTH_*` environment variables, then command-line flags. Parsed once into typed values and
//! checked against documented ranges, so that no later arithmetic on a setting can overflow and a
//! mistake stops the start with one line naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

/// Every setting of the auth-server. Field `foo_bar` is `AUTH_FOO_BAR` and `foo_bar` in TOML.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to bind.
    pub listen: SocketAddr,
    /// The `iss` claim and the metadata `issuer`.
    pub issuer: Url,
    /// `sqlite://PATH` (embedded) or `redis://HOST:PORT/DB`.
    pub store: StoreUrl,
    /// Directory of the shared secrets (client-secret key, key-encryption key) and of PEM
    /// signing keys to import.
    pub keys_dir: PathBuf,
    /// Access token lifetime, seconds.
    pub access_token_ttl: u64,
    /// Refresh token family lifetime, seconds.
    pub refresh_token_ttl: u64,
    /// Default `aud` of tokens.
    pub audience: String,
    /// Browser origins allowed to call the endpoints (comma-separated in the environment).
    #[serde(deserialize_with = "comma_list")]
    pub cors_origins: Vec<String>,
    /// Seconds during which a retried refresh gets the same pair back; 0 turns it off.
    pub refresh_reuse_grace: u64,
    /// Whether the password grant is allowed without client authentication (as Swagger UI sends it).
    pub password_grant_without_client: bool,
    /// Concurrent password hash computations; 0 means one per core.
    pub password_workers: usize,
    /// Password checks allowed to wait for a worker before `/token` answers 503.
    pub password_queue: usize,
    /// Seconds a window of failed logins lasts.
    pub login_throttle_window: u64,
    /// Failed logins per username and client address in a window before `/token` answers 429.
    pub login_max_failures_per_address: u64,
    /// Failed logins per username from all addresses in a window before `/token` answers 429.
    pub login_max_failures_per_user: u64,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client.
    #[serde(deserialize_with = "comma_nets")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Most fields in a form body (`/token`, `/revoke`, `/introspect`).
    pub max_form_fields: usize,
    /// Seconds a client has to send a request body once its head has arrived.
    pub body_read_timeout: u64,
    /// Seconds a client has to send a request head; also how long an idle connection stays open.
    pub header_read_timeout: u64,
    /// Largest request head (request line and header fields), bytes.
    pub max_header_bytes: usize,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Seconds given to in-flight requests at shutdown.
    pub shutdown_timeout: u64,
    /// Base64 of the 32-byte key that seals private signing keys in the store; when unset, the
    /// file `key-encryption.key` in `keys_dir` (created on first start).
    pub key_encryption_key: Option<Secret>,
    /// Seconds between scheduled key rotations; 0 turns the schedule off.
    pub key_rotation_interval: u64,
    /// Seconds a new key is published before it signs.
    pub key_publish_ahead: u64,
    /// Seconds between each process's reads of the key states: how fast changes propagate.
    pub key_sync_interval: u64,
    /// Seconds a retired key stays published after the last token it signed has expired.
    pub key_removal_leeway: u64,
}

/// A secret setting: `Debug` and `auth-server config` never show it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Settings given as command-line flags; they win over the file and the environment.
#[derive(Clone, Debug, Default, Serialize, clap::Args)]
pub struct Overrides {
    /// Address to bind (AUTH_LISTEN).
    #[arg(long, global = true, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Issuer URL (AUTH_ISSUER).
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Store URL (AUTH_STORE).
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// Keys directory (AUTH_KEYS_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys_dir: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// A store URL whose `Debug` hides any password in it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(pub String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::store::redact_url(&self.0))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            issuer: default_issuer(),
            store: StoreUrl("sqlite://data/auth.db".into()),
            keys_dir: PathBuf::from("keys"),
            access_token_ttl: 900,
            refresh_token_ttl: 1_209_600,
            audience: "api".into(),
            cors_origins: vec![
                "http://127.0.0.1:8001".into(),
                "http://localhost:8001".into(),
            ],
            refresh_reuse_grace: 5,
            password_grant_without_client: true,
            password_workers: 0,
            password_queue: 64,
            login_throttle_window: 900,
            login_max_failures_per_address: 10,
            login_max_failures_per_user: 100,
            trusted_proxies: Vec::new(),
            max_body_bytes: 64 * 1024,
            max_form_fields: 32,
            body_read_timeout: 10,
            header_read_timeout: 10,
            max_header_bytes: 16 * 1024,
            max_connections: 4096,
            log_format: LogFormat::Text,
            shutdown_timeout: 20,
            key_encryption_key: None,
            key_rotation_interval: 30 * 24 * 3600,
            key_publish_ahead: 3600,
            key_sync_interval: 10,
            key_removal_leeway: 60,
        }
    }
}

const ENV_PREFIX: &str = "AUTH_";

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
const YEAR: u64 = 365 * DAY;

/// The range of a numeric setting, inclusive, as the README's settings table states it.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// The field name (`access_token_ttl` is `AUTH_ACCESS_TOKEN_TTL`).
    pub name: &'static str,
    pub min: u64,
    pub max: u64,
}

impl Range {
    const fn new(name: &'static str, min: u64, max: u64) -> Self {
        Self { name, min, max }
    }

    fn check(&self, value: u64) -> Result<(), SettingsError> {
        if (self.min..=self.max).contains(&value) {
            return Ok(());
        }
        Err(SettingsError(format!(
            "{ENV_PREFIX}{}: {value} is out of range; must be from {} to {}",
            self.name.to_uppercase(),
            self.min,
            self.max
        )))
    }
}

/// Every numeric setting's range. The bounds keep each value meaningful (a floor that the
/// protocol or the HTTP stack needs, a ceiling no deployment needs) and keep every sum and
/// product of settings (`now + ttl`, `access_ttl + sync + leeway`, `3 × sync`) far from `u64`
/// overflow; the arithmetic saturates all the same.
pub const RANGES: &[Range] = &[
    Range::new("access_token_ttl", 1, YEAR),
    Range::new("refresh_token_ttl", 1, YEAR),
    Range::new("refresh_reuse_grace", 0, 5 * MINUTE),
    Range::new("password_workers", 0, 1024),
    Range::new("password_queue", 0, 65_536),
    Range::new("login_throttle_window", 1, 30 * DAY),
    Range::new("login_max_failures_per_address", 0, 100_000_000),
    Range::new("login_max_failures_per_user", 0, 100_000_000),
    Range::new("max_body_bytes", 1024, 16 * 1024 * 1024),
    // A token request may carry that many fields.
    Range::new("max_form_fields", 8, 1024),
    Range::new("body_read_timeout", 1, HOUR),
    Range::new("header_read_timeout", 1, HOUR),
    Range::new(
        "max_header_bytes",
        shared::serve::MIN_HEADER_BYTES as u64,
        1024 * 1024,
    ),
    Range::new("max_connections", 1, 1_048_576),
    Range::new("shutdown_timeout", 0, HOUR),
    // 0 turns the schedule off; otherwise at least `key_publish_ahead` (checked below).
    Range::new("key_rotation_interval", 0, YEAR),
    // At least 3 × `key_sync_interval` (checked below).
    Range::new("key_publish_ahead", 3, 30 * DAY),
    Range::new("key_sync_interval", 1, HOUR),
    Range::new("key_removal_leeway", 0, DAY),
];
const KNOWN: &[&str] = &[
    "listen",
    "issuer",
    "store",
    "keys_dir",
    "access_token_ttl",
    "refresh_token_ttl",
    "audience",
    "cors_origins",
    "refresh_reuse_grace",
    "password_grant_without_client",
    "password_workers",
    "password_queue",
    "login_throttle_window",
    "login_max_failures_per_address",
    "login_max_failures_per_user",
    "trusted_proxies",
    "max_body_bytes",
    "max_form_fields",
    "body_read_timeout",
    "header_read_timeout",
    "max_header_bytes",
    "max_connections",
    "log_format",
    "shutdown_timeout",
    "key_encryption_key",
    "key_rotation_interval",
    "key_publish_ahead",
    "key_sync_interval",
    "key_removal_leeway",
];

impl Settings {
    /// The key lifecycle's timings (see `keys::lifecycle::Schedule`).
    pub fn key_schedule(&self) -> crate::keys::lifecycle::Schedule {
        crate::keys::lifecycle::Schedule {
            access_ttl: self.access_token_ttl,
            rotation_interval: self.key_rotation_interval,
            publish_ahead: self.key_publish_ahead,
            sync_interval: self.key_sync_interval,
            removal_leeway: self.key_removal_leeway,
        }
    }

    /// The key lifecycle on `store`, with the key-encryption key from `key_encryption_key` or
    /// the keys directory.
    pub fn key_lifecycle(
        &self,
        store: std::sync::Arc<dyn crate::store::Store>,
    ) -> anyhow::Result<crate::keys::lifecycle::KeyLifecycle> {
        let kek = crate::keys::encryption::KeyEncryptionKey::resolve(
            self.key_encryption_key.as_ref().map(|s| s.0.as_str()),
            &self.keys_dir,
        )?;
        Ok(crate::keys::lifecycle::KeyLifecycle::new(
            store,
            kek,
            self.key_schedule(),
        ))
    }

    /// Defaults, then `config` (TOML, unknown keys rejected), then `AUTH_*` variables.
    pub fn load(config: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with(config, &Overrides::default())
    }

    /// As [`Settings::load`], then the command-line flags in `overrides`.
    pub fn load_with(config: Option<&Path>, overrides: &Overrides) -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = config {
            if !path.is_file() {
                return Err(SettingsError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(Env::prefixed(ENV_PREFIX).only(KNOWN))
            .merge(Serialized::defaults(overrides));
        let settings: Settings = figment
            .extract()
            .map_err(|err| SettingsError::from_figment(&err))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every numeric setting against its range ([`RANGES`]) and the settings that must
    /// agree with each other. `load` calls it, and so does the server before it starts, whoever
    /// built the settings.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        let fail = |name: &str, why: &str| {
            Err(SettingsError(format!(
                "{ENV_PREFIX}{}: {why}",
                name.to_uppercase()
            )))
        };
        for (name, value) in self.numbers() {
            if let Some(range) = RANGES.iter().find(|range| range.name == name) {
                range.check(value)?;
            }
        }
        if self.audience.trim().is_empty() {
            return fail("audience", "must not be empty");
        }
        if !matches!(self.issuer.scheme(), "http" | "https")
            || self.issuer.query().is_some()
            || self.issuer.fragment().is_some()
        {
            return fail(
                "issuer",
                "must be an http(s) URL without query or fragment (RFC 8414 §2)",
            );
        }
        self.validate_keys()
    }

    /// Every numeric setting by name, widened to `u64` (a `usize` beyond it saturates, and is
    /// out of range anyway).
    fn numbers(&self) -> [(&'static str, u64); 19] {
        let wide = |value: usize| u64::try_from(value).unwrap_or(u64::MAX);
        [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("refresh_reuse_grace", self.refresh_reuse_grace),
            ("password_workers", wide(self.password_workers)),
            ("password_queue", wide(self.password_queue)),
            ("login_throttle_window", self.login_throttle_window),
            (
                "login_max_failures_per_address",
                self.login_max_failures_per_address,
            ),
            (
                "login_max_failures_per_user",
                self.login_max_failures_per_user,
            ),
            ("max_body_bytes", wide(self.max_body_bytes)),
            ("max_form_fields", wide(self.max_form_fields)),
            ("body_read_timeout", self.body_read_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("max_header_bytes", wide(self.max_header_bytes)),
            ("max_connections", wide(self.max_connections)),
            ("shutdown_timeout", self.shutdown_timeout),
            ("key_rotation_interval", self.key_rotation_interval),
            ("key_publish_ahead", self.key_publish_ahead),
            ("key_sync_interval", self.key_sync_interval),
            ("key_removal_leeway", self.key_removal_leeway),
        ]
    }

    /// The key lifecycle's timings must keep a new key published for a whole JWKS cache
    /// lifetime before it signs (see `keys::lifecycle`).
    fn validate_keys(&self) -> Result<(), SettingsError> {
        let fail = |name: &str, why: String| {
            Err(SettingsError(format!(
                "{ENV_PREFIX}{}: {why}",
                name.to_uppercase()
            )))
        };
        if let Some(Secret(text)) = &self.key_encryption_key {
            if crate::keys::encryption::KeyEncryptionKey::from_base64(text).is_err() {
                return fail("key_encryption_key", "must be base64 of 32 bytes".into());
            }
        }
        let three_syncs = self.key_sync_interval.saturating_mul(3);
        if self.key_publish_ahead < three_syncs {
            return fail(
                "key_publish_ahead",
                format!(
                    "must be at least 3 × AUTH_KEY_SYNC_INTERVAL ({three_syncs} s), so that a new \
                     key is published for a JWKS cache lifetime before it signs"
                ),
            );
        }
        if self.key_rotation_interval != 0 && self.key_rotation_interval < self.key_publish_ahead {
            return fail(
                "key_rotation_interval",
                "must be 0 (no schedule) or at least AUTH_KEY_PUBLISH_AHEAD".into(),
            );
        }
        Ok(())
    }

    /// The issuer as it appears in tokens and metadata: no trailing slash.
    pub fn issuer_str(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// An absolute URL under the issuer.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.issuer_str())
    }

    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl)
    }

    pub fn password_workers(&self) -> usize {
        if self.password_workers > 0 {
            self.password_workers
        } else {
            std::thread::available_parallelism().map_or(2, usize::from)
        }
    }

    /// The per-connection bounds handed to the accept loop.
    pub fn connection_limits(&self) -> shared::serve::ConnectionLimits {
        shared::serve::ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            max_header_bytes: self.max_header_bytes,
            ..Default::default()
        }
    }

    /// The effective settings as TOML, for `auth-server config`; secrets are masked.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        masked.store = StoreUrl(crate::store::redact_url(&self.store.0));
        if masked.key_encryption_key.is_some() {
            masked.key_encryption_key = Some(Secret("[redacted]".into()));
        }
        toml::to_string(&masked).unwrap_or_else(|err| format!("# cannot render settings: {err}\n"))
    }
}

/// One line that names the setting and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

impl SettingsError {
    fn from_figment(err: &figment::Error) -> Self {
        let name = err
            .path
            .last()
            .map(|key| format!("{ENV_PREFIX}{}", key.to_uppercase()));
        let source = err.metadata.as_ref().map(|m| {
            if m.name.contains("Overrides") {
                "the command line".to_owned()
            } else {
                m.name.to_string()
            }
        });
        let what = match (&err.kind, &name) {
            (figment::error::Kind::UnknownField(field, _), _) => {
                format!("unknown setting {field:?}")
            }
            (kind, _) => kind.to_string(),
        };
        match (name, source) {
            (Some(name), Some(source)) => Self(format!("{name} (from {source}): {what}")),
            (Some(name), None) => Self(format!("{name}: {what}")),
            (None, Some(source)) => Self(format!("{source}: {what}")),
            (None, None) => Self(what),
        }
    }
}

fn comma_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        OneOrMany::Many(items) => items,
    })
}

#[allow(clippy::expect_used)] // a constant that is known to parse
fn default_issuer() -> Url {
    Url::parse("http://127.0.0.1:8000").expect("the default issuer is a URL")
}

fn comma_nets<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    comma_list(deserializer)?
        .iter()
        .map(|text| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("{text:?} is not an IP address or CIDR range"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_refuse_timings_that_break_the_derivation() {
        let valid = Settings::default();
        assert!(valid.validate().is_ok());
        assert_eq!(valid.key_schedule().jwks_max_age(), 300);
        let too_short = Settings {
            key_publish_ahead: 29,
            ..Settings::default()
        };
        let err = too_short.validate().unwrap_err().to_string();
        assert!(err.starts_with("AUTH_KEY_PUBLISH_AHEAD: "), "{err}");
        let no_sync = Settings {
            key_sync_interval: 0,
            ..Settings::default()
        };
        assert!(no_sync.validate().is_err());
        let rotating_faster_than_publishing = Settings {
            key_rotation_interval: 60,
            ..Settings::default()
        };
        let err = rotating_faster_than_publishing
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("AUTH_KEY_ROTATION_INTERVAL: "), "{err}");
        let bad_kek = Settings {
            key_encryption_key: Some(crate::settings::Secret("c2hvcnQ=".into())),
            ..Settings::default()
        };
        let err = bad_kek.validate().unwrap_err().to_string();
        assert!(err.starts_with("AUTH_KEY_ENCRYPTION_KEY: "), "{err}");
        assert!(!err.contains("c2hvcnQ"), "the value is never echoed: {err}");
        assert!(!format!("{bad_kek:?}").contains("c2hvcnQ"));
        assert!(!bad_kek.to_masked_toml().contains("c2hvcnQ"));
    }

    #[test]
    fn debug_and_config_output_mask_the_store_password() {
        let settings = Settings {
            store: StoreUrl("redis://:hunter2-store-pw@redis.internal:6379/0".into()),
            ..Settings::default()
        };
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2-store-pw"), "{debug}");
        assert!(debug.contains("redis.internal"), "{debug}");
        let toml = settings.to_masked_toml();
        assert!(!toml.contains("hunter2-store-pw"), "{toml}");
    }

    #[test]
    fn connection_limits_follow_the_settings() {
        let settings = Settings {
            max_connections: 7,
            header_read_timeout: 3,
            max_header_bytes: 9000,
            ..Settings::default()
        };
        let limits = settings.connection_limits();
        assert_eq!(limits.max_connections, 7);
        assert_eq!(limits.header_read_timeout, Duration::from_secs(3));
        assert_eq!(limits.max_header_bytes, 9000);
    }

    #[test]
    fn limits_below_their_floor_are_refused_with_the_setting_named() {
        for (adjust, name) in [
            (
                (|s: &mut Settings| s.max_header_bytes = 4096) as fn(&mut Settings),
                "AUTH_MAX_HEADER_BYTES",
            ),
            (|s| s.max_form_fields = 3, "AUTH_MAX_FORM_FIELDS"),
            (|s| s.header_read_timeout = 0, "AUTH_HEADER_READ_TIMEOUT"),
            (|s| s.body_read_timeout = 0, "AUTH_BODY_READ_TIMEOUT"),
            (|s| s.max_connections = 0, "AUTH_MAX_CONNECTIONS"),
        ] {
            let mut settings = Settings::default();
            adjust(&mut settings);
            let err = settings.validate().expect_err(name);
            assert!(err.0.starts_with(name), "{err}");
        }
    }

    #[test]
    fn every_numeric_setting_has_one_range_and_the_readme_table_states_it() {
        let readme = include_str!("../../README.md");
        let numbers = Settings::default().numbers();
        assert_eq!(numbers.len(), RANGES.len());
        for (name, _) in numbers {
            let range = RANGES.iter().filter(|r| r.name == name).count();
            assert_eq!(range, 1, "{name} needs exactly one range");
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
                // Set through serde, as a file or the environment would.
                let settings: Settings = Figment::from(Serialized::defaults(&defaults))
                    .merge(Serialized::default(range.name, value))
                    .extract()
                    .unwrap();
                let err = settings.validate().expect_err(&variable).to_string();
                assert!(
                    err.starts_with(&format!("{variable}: {value} is out of range")),
                    "{variable}={value}: {err}"
                );
                assert_eq!(err.lines().count(), 1, "{err}");
            }
        }
    }

    #[test]
    fn timings_at_their_ceilings_do_not_overflow() {
        let settings = Settings {
            access_token_ttl: YEAR,
            key_rotation_interval: YEAR,
            key_publish_ahead: 30 * DAY,
            key_sync_interval: HOUR,
            key_removal_leeway: DAY,
            ..Settings::default()
        };
        assert!(settings.validate().is_ok());
        let schedule = settings.key_schedule();
        assert_eq!(schedule.removal_delay(), YEAR + HOUR + DAY);
        assert_eq!(schedule.jwks_max_age(), 300);
        // Debug builds panic on overflow: these sums must saturate instead.
        let _ = schedule.staging_due(u64::MAX - 1, u64::MAX - 1);
        let huge = crate::keys::lifecycle::Schedule {
            access_ttl: u64::MAX,
            sync_interval: u64::MAX,
            ..schedule
        };
        assert_eq!(huge.removal_delay(), u64::MAX);
        assert_eq!(huge.jwks_max_age(), 1);
    }
}
