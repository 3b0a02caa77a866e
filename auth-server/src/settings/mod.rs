//! Settings: the defaults the README's tables give, then the TOML file named by `--config`, then
//! `AUTH_*` environment variables, then command-line flags. Parsed once into typed values and
//! checked against documented ranges, so that no later arithmetic on a setting can overflow and a
//! mistake stops the start with one line naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use server_plumbing::settings::layered;
pub use server_plumbing::settings::Range;

mod checks;
pub use checks::RANGES;
use url::Url;

/// Every setting of the auth-server. Field `foo_bar` is `AUTH_FOO_BAR` and `foo_bar` in TOML.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Separate address for `/metrics`, `/livez` and `/readyz`; when set, `/metrics` leaves
    /// the public address.
    pub admin_listen: Option<SocketAddr>,
    /// The `iss` claim and the metadata `issuer`.
    pub issuer: Url,
    /// `sqlite://PATH` (embedded), `redis://HOST:PORT/DB`, or `rediss://HOST:PORT/DB` (TLS);
    /// `redis+cluster://HOST:PORT,HOST:PORT` (or `rediss+cluster://`) for a Redis Cluster.
    pub store: StoreUrl,
    /// PEM file of the CAs that may sign the Redis server's certificate, instead of the
    /// system's roots (`rediss://` only).
    pub redis_ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mutual TLS with Redis; with `redis_client_key`.
    pub redis_client_cert: Option<PathBuf>,
    /// PEM private key of `redis_client_cert`.
    pub redis_client_key: Option<PathBuf>,
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
    /// Hold the registered clients in memory, re-read twice per `key_sync_interval`: a change
    /// to a client then holds at every replica within `key_sync_interval` instead of at once.
    pub client_cache: bool,
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
            admin_listen: None,
            issuer: default_issuer(),
            store: StoreUrl("sqlite://data/auth.db".into()),
            redis_ca_file: None,
            redis_client_cert: None,
            redis_client_key: None,
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
            client_cache: false,
        }
    }
}

const ENV_PREFIX: &str = "AUTH_";

const KNOWN: &[&str] = &[
    "listen",
    "admin_listen",
    "issuer",
    "store",
    "redis_ca_file",
    "redis_client_cert",
    "redis_client_key",
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
    "client_cache",
];

impl Settings {
    /// How long a client record held in memory may be served (see `oauth::client_cache`): the
    /// key sync interval with `client_cache` on, zero (nothing held) with it off.
    pub fn client_cache_bound(&self) -> std::time::Duration {
        if self.client_cache {
            std::time::Duration::from_secs(self.key_sync_interval)
        } else {
            std::time::Duration::ZERO
        }
    }

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

    /// The TLS files for a `rediss://` store.
    pub fn redis_tls(&self) -> crate::store::redis::RedisTls {
        crate::store::redis::RedisTls {
            ca_file: self.redis_ca_file.clone(),
            client_cert: self.redis_client_cert.clone(),
            client_key: self.redis_client_key.clone(),
        }
    }

    /// Opens the store these settings name, over TLS with their files for `rediss://`: what the
    /// server and every CLI command use.
    pub async fn open_store(&self) -> anyhow::Result<std::sync::Arc<dyn crate::store::Store>> {
        crate::store::open_with(&self.store.0, &self.redis_tls()).await
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
        let figment = layered(&Settings::default(), config, ENV_PREFIX, KNOWN, overrides)
            .map_err(SettingsError)?;
        let settings: Settings = figment
            .extract()
            .map_err(|err| SettingsError::from_figment(&err))?;
        settings.validate()?;
        Ok(settings)
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
    pub fn connection_limits(&self) -> server_plumbing::serve::ConnectionLimits {
        server_plumbing::serve::ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: Duration::from_secs(self.header_read_timeout),
            max_header_bytes: self.max_header_bytes,
            ..Default::default()
        }
    }

    /// Where `/readyz` is asked by `auth-server healthcheck`: the admin address when set.
    pub fn health_addr(&self) -> SocketAddr {
        server_plumbing::healthcheck::reachable(self.admin_listen.unwrap_or(self.listen))
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
}
