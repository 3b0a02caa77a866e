//! What a service tells its verifier, kept apart from the verifier so that settings code can
//! read the defaults without knowing how keys are fetched or tokens checked.
//!
//! The configuration is `#[non_exhaustive]` and built through [`VerifierConfigBuilder`], so
//! that a setting added later is a new setter, not a breaking change for every service that
//! fills the struct. The builder is also where the rules between settings are checked once,
//! with an error that names the setting, instead of being clamped silently at run time.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

/// Longest bearer token the verifier parses unless configured otherwise: RFC 9068 tokens are a
/// few hundred bytes to a couple of kilobytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Verified tokens remembered unless configured otherwise: about 1 KiB each.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: usize = 4096;

/// Clock skew allowed on `exp` and `nbf` unless configured otherwise.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// How long a key set may stay in use past its freshness unless configured otherwise: a day
/// of issuer outage is served, a key revoked before it is not trusted for longer.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 3600);

/// How often the revocation feed is polled unless configured otherwise: a revocation reaches
/// the verifier within this time.
pub const DEFAULT_REVOCATION_POLL: Duration = Duration::from_secs(5);

/// How long the revocation list may go without a successful poll unless configured otherwise
/// before the verifier says it is stale (and, failing closed, refuses tokens).
pub const DEFAULT_REVOCATION_MAX_STALE: Duration = Duration::from_secs(300);

/// The most clock skew a configuration may allow on `exp` and `nbf`.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// Where the keys come from and what a token must say.
///
/// Build it with [`VerifierConfig::new`] (an issuer, an audience, every other setting at its
/// default) or with [`VerifierConfig::builder`], which checks the settings against each other
/// and takes what only a builder can (several audiences, a CA file, a client of the service's
/// own). The fields are public to read; assigning one directly skips the builder's checks
/// (the verifier still caps the leeway at [`MAX_LEEWAY`] and treats a `max_refresh` below
/// `min_refresh` as `min_refresh`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifierConfig {
    /// Expected `iss`; also where the metadata is found unless `jwks_url` is set.
    pub issuer: Url,
    /// Accepted audiences: a token's `aud` must name at least one of them (RFC 7519 §4.1.3).
    /// An empty list accepts no token; the builder refuses it.
    pub audiences: Vec<String>,
    /// Skips discovery when set.
    pub jwks_url: Option<Url>,
    /// Clock skew allowed on `exp` and `nbf`; at most [`MAX_LEEWAY`].
    pub leeway: Duration,
    /// Lower bound on how long a fetched key set counts as fresh, whatever `Cache-Control`
    /// says (a `no-store` issuer is not fetched in a loop).
    pub min_refresh: Duration,
    /// Upper bound on how long a fetched key set counts as fresh, whatever `Cache-Control`
    /// says (new keys arrive within this time).
    pub max_refresh: Duration,
    /// At most one fetch per this interval is caused by tokens naming an unknown `kid`.
    pub unknown_kid_cooldown: Duration,
    /// Wait between attempts while the issuer cannot be reached.
    pub retry_interval: Duration,
    /// Longer tokens are refused before any parsing.
    pub max_token_bytes: usize,
    /// Timeout of one metadata, JWKS or revocation-feed request, applied to each request (so
    /// also with a client given to [`VerifierConfigBuilder::http_client`]).
    pub fetch_timeout: Duration,
    /// Verified tokens remembered (by SHA-256) until they expire or the keys change; 0: none.
    pub token_cache_capacity: usize,
    /// How long a fetched key set may be used past its freshness while no fetch succeeds;
    /// then every token is refused with [`super::VerifyError::KeysUnavailable`]. `None`: no
    /// bound. Keys given to [`super::Verifier::with_keys`] have no freshness and are never
    /// refused.
    pub max_stale: Option<Duration>,
    /// Interval between polls of the issuer's revocation feed (found through its metadata);
    /// zero turns the feed off. Only [`super::Verifier::start`] polls on its own.
    pub revocation_poll: Duration,
    /// After this long without a successful poll the revocation list is stale: readiness
    /// says so and, with `revocation_fail_closed`, tokens are refused.
    pub revocation_max_stale: Duration,
    /// Refuse every token with [`super::VerifyError::RevocationsUnavailable`] (a 503) while the
    /// first revocation list has not arrived or the one held is stale; otherwise tokens are
    /// judged on the list held.
    pub revocation_fail_closed: bool,
    /// The revocation feed's URL; skips finding it through the issuer's metadata (for a
    /// service that reaches the issuer at another address than `issuer`, as with `jwks_url`).
    pub revocation_feed_url: Option<Url>,
    /// Fetch from plain `http://` URLs on hosts other than loopback. Off by default: keys
    /// fetched without TLS can be swapped by anyone on the path, who could then sign any
    /// token, and a revocation feed fetched without it can be withheld. Turn it on only where
    /// the network itself is trusted (TLS terminated by a mesh sidecar, say). Loopback issuers
    /// (`127.0.0.0/8`, `::1`, `localhost`) are always allowed.
    pub allow_http: bool,
    /// How the verifier reaches the issuer: its own client (with extra roots from a CA file)
    /// or the service's.
    pub(crate) transport: Transport,
}

/// How the verifier reaches the issuer.
#[derive(Clone)]
pub(crate) enum Transport {
    /// A client the verifier builds: no redirects, the built-in and native roots plus these.
    Own {
        extra_roots: Vec<reqwest::Certificate>,
    },
    /// The service's client, used as it is.
    Given(reqwest::Client),
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Own { extra_roots } => f
                .debug_struct("Own")
                .field("extra_roots", &extra_roots.len())
                .finish(),
            Self::Given(client) => f.debug_tuple("Given").field(client).finish(),
        }
    }
}

impl VerifierConfig {
    /// Tokens of `issuer` for `audience`, every other setting at its default. The short form
    /// of [`VerifierConfig::builder`]`(issuer, audience).build()`, without its checks (the
    /// defaults meet them; a blank audience accepts no token).
    pub fn new(issuer: Url, audience: impl Into<String>) -> Self {
        Self {
            issuer,
            audiences: vec![audience.into()],
            jwks_url: None,
            leeway: DEFAULT_LEEWAY,
            min_refresh: Duration::from_secs(30),
            max_refresh: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(10),
            retry_interval: Duration::from_secs(2),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            fetch_timeout: Duration::from_secs(5),
            token_cache_capacity: DEFAULT_TOKEN_CACHE_CAPACITY,
            max_stale: Some(DEFAULT_MAX_STALE),
            revocation_poll: DEFAULT_REVOCATION_POLL,
            revocation_max_stale: DEFAULT_REVOCATION_MAX_STALE,
            revocation_fail_closed: false,
            revocation_feed_url: None,
            allow_http: false,
            transport: Transport::Own {
                extra_roots: Vec::new(),
            },
        }
    }

    /// A builder for tokens of `issuer` for `audience`, every setting at its default until
    /// set; [`VerifierConfigBuilder::build`] checks them.
    pub fn builder(issuer: Url, audience: impl Into<String>) -> VerifierConfigBuilder {
        VerifierConfigBuilder {
            config: Self::new(issuer, audience),
            ca_file: None,
            http_client: None,
        }
    }
}

/// Sets what a [`VerifierConfig`] holds, one setter per setting, and checks the whole in
/// [`VerifierConfigBuilder::build`].
#[derive(Debug)]
#[must_use = "a builder does nothing until built"]
pub struct VerifierConfigBuilder {
    config: VerifierConfig,
    ca_file: Option<PathBuf>,
    http_client: Option<reqwest::Client>,
}

/// Why [`VerifierConfigBuilder::build`] refused a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No audience, or a blank one: a token must name one the service accepts.
    #[error("at least one audience is needed, and none may be blank")]
    NoAudience,
    /// The issuer is not an `http` or `https` URL.
    #[error("the issuer {0} is not an http or https URL")]
    IssuerNotHttp(Url),
    /// The leeway is above [`MAX_LEEWAY`].
    #[error("the leeway of {0:?} is above the most allowed, 60 s")]
    LeewayTooLong(Duration),
    /// `max_refresh` is below `min_refresh`.
    #[error("max_refresh ({max:?}) must be at least min_refresh ({min:?})")]
    RefreshBounds {
        /// The floor set.
        min: Duration,
        /// The ceiling set.
        max: Duration,
    },
    /// `max_token_bytes` is zero: every token would be refused.
    #[error("max_token_bytes must be above zero")]
    NoTokenBytes,
    /// The issuer or the JWKS URL is plain http on a host other than loopback, and
    /// [`VerifierConfigBuilder::allow_http`] is off: the verifier would never fetch keys.
    #[error("{0} is plain http on a host other than loopback; use https or allow_http")]
    PlainHttp(Url),
    /// `revocation_max_stale` is below twice `revocation_poll`, so a healthy list would turn
    /// stale between two polls.
    #[error(
        "revocation_max_stale ({max_stale:?}) must be at least twice revocation_poll ({poll:?})"
    )]
    RevocationMaxStale {
        /// The poll interval set.
        poll: Duration,
        /// The staleness bound set.
        max_stale: Duration,
    },
    /// The CA file could not be read.
    #[error("the CA file {path} cannot be read: {source}")]
    CaFileUnreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file is not a PEM bundle of certificates.
    #[error("the CA file {path} is not a PEM certificate bundle: {source}")]
    CaFileInvalid {
        /// The file.
        path: PathBuf,
        /// Why.
        source: reqwest::Error,
    },
    /// The CA file holds no certificate.
    #[error("the CA file {path} holds no certificate")]
    CaFileEmpty {
        /// The file.
        path: PathBuf,
    },
    /// Both a CA file and a client were given: a built client cannot take more roots, so the
    /// CA file would be ignored.
    #[error("a CA file and an HTTP client were both given: add the roots to the client instead")]
    CaFileWithHttpClient,
}

impl VerifierConfigBuilder {
    /// The audiences accepted, replacing the one given to [`VerifierConfig::builder`]: a
    /// token's `aud` must name at least one of them (RFC 7519 §4.1.3).
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// See [`VerifierConfig::jwks_url`]: the JWKS at this URL, skipping discovery.
    pub fn jwks_url(mut self, jwks_url: Url) -> Self {
        self.config.jwks_url = Some(jwks_url);
        self
    }

    /// See [`VerifierConfig::leeway`]; at most [`MAX_LEEWAY`].
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.config.leeway = leeway;
        self
    }

    /// See [`VerifierConfig::min_refresh`].
    pub fn min_refresh(mut self, min_refresh: Duration) -> Self {
        self.config.min_refresh = min_refresh;
        self
    }

    /// See [`VerifierConfig::max_refresh`]; at least `min_refresh`.
    pub fn max_refresh(mut self, max_refresh: Duration) -> Self {
        self.config.max_refresh = max_refresh;
        self
    }

    /// See [`VerifierConfig::unknown_kid_cooldown`].
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.config.unknown_kid_cooldown = cooldown;
        self
    }

    /// See [`VerifierConfig::retry_interval`].
    pub fn retry_interval(mut self, retry_interval: Duration) -> Self {
        self.config.retry_interval = retry_interval;
        self
    }

    /// See [`VerifierConfig::max_token_bytes`]; above zero.
    pub fn max_token_bytes(mut self, max_token_bytes: usize) -> Self {
        self.config.max_token_bytes = max_token_bytes;
        self
    }

    /// See [`VerifierConfig::fetch_timeout`].
    pub fn fetch_timeout(mut self, fetch_timeout: Duration) -> Self {
        self.config.fetch_timeout = fetch_timeout;
        self
    }

    /// See [`VerifierConfig::token_cache_capacity`].
    pub fn token_cache_capacity(mut self, capacity: usize) -> Self {
        self.config.token_cache_capacity = capacity;
        self
    }

    /// See [`VerifierConfig::max_stale`]; `None`: stale keys stay in use for as long as the
    /// issuer is down.
    pub fn max_stale(mut self, max_stale: Option<Duration>) -> Self {
        self.config.max_stale = max_stale;
        self
    }

    /// See [`VerifierConfig::revocation_poll`]; zero turns the feed off.
    pub fn revocation_poll(mut self, interval: Duration) -> Self {
        self.config.revocation_poll = interval;
        self
    }

    /// See [`VerifierConfig::revocation_max_stale`]; at least twice `revocation_poll`.
    pub fn revocation_max_stale(mut self, max_stale: Duration) -> Self {
        self.config.revocation_max_stale = max_stale;
        self
    }

    /// See [`VerifierConfig::revocation_fail_closed`].
    pub fn revocation_fail_closed(mut self, fail_closed: bool) -> Self {
        self.config.revocation_fail_closed = fail_closed;
        self
    }

    /// The revocation feed's URL, instead of finding it through the issuer's metadata (see
    /// [`VerifierConfig::revocation_feed_url`]).
    pub fn revocation_feed_url(mut self, url: Url) -> Self {
        self.config.revocation_feed_url = Some(url);
        self
    }

    /// Allow plain `http://` issuer, JWKS and feed URLs on hosts other than loopback (see
    /// [`VerifierConfig::allow_http`]).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.config.allow_http = allow;
        self
    }

    /// Reach the issuer through the service's own client (a private CA, a proxy, client
    /// certificates). The verifier then uses it as it is: its own client's settings no longer
    /// apply, which are no redirects (a client following redirects follows them for the
    /// metadata, JWKS and feed too: set `redirect::Policy::none()` to keep the verifier's
    /// behaviour), its roots (built-in and native) and a CA file (refused together with a
    /// client). [`VerifierConfig::fetch_timeout`] still applies to each request.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Trust the certificates of this PEM bundle in addition to the default roots, for an
    /// issuer behind a private CA. Read by [`VerifierConfigBuilder::build`].
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_file = Some(path.as_ref().to_owned());
        self
    }

    /// The configuration, once every setting agrees with the others; the CA file is read here.
    pub fn build(self) -> Result<VerifierConfig, ConfigError> {
        let mut config = self.config;
        if config.audiences.is_empty() || config.audiences.iter().any(|a| a.trim().is_empty()) {
            return Err(ConfigError::NoAudience);
        }
        if !matches!(config.issuer.scheme(), "http" | "https") {
            return Err(ConfigError::IssuerNotHttp(config.issuer));
        }
        if config.leeway > MAX_LEEWAY {
            return Err(ConfigError::LeewayTooLong(config.leeway));
        }
        if config.max_refresh < config.min_refresh {
            return Err(ConfigError::RefreshBounds {
                min: config.min_refresh,
                max: config.max_refresh,
            });
        }
        if config.max_token_bytes == 0 {
            return Err(ConfigError::NoTokenBytes);
        }
        // Said at start rather than found at the first fetch, where it would leave the service
        // unready with only a log line to say why.
        if !config.allow_http {
            let plain = std::iter::once(&config.issuer)
                .chain(config.jwks_url.as_ref())
                .chain(config.revocation_feed_url.as_ref())
                .find(|url| url.scheme() == "http" && !is_loopback(url));
            if let Some(url) = plain {
                return Err(ConfigError::PlainHttp(url.clone()));
            }
        }
        if config.revocation_max_stale < config.revocation_poll.saturating_mul(2) {
            return Err(ConfigError::RevocationMaxStale {
                poll: config.revocation_poll,
                max_stale: config.revocation_max_stale,
            });
        }
        config.transport = match (self.http_client, self.ca_file) {
            (Some(_), Some(_)) => return Err(ConfigError::CaFileWithHttpClient),
            (Some(client), None) => Transport::Given(client),
            (None, Some(path)) => Transport::Own {
                extra_roots: read_ca_file(path)?,
            },
            (None, None) => Transport::Own {
                extra_roots: Vec::new(),
            },
        };
        Ok(config)
    }
}

/// The certificates of a PEM bundle; at least one.
fn read_ca_file(path: PathBuf) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(source) => return Err(ConfigError::CaFileUnreadable { path, source }),
    };
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(roots) if roots.is_empty() => Err(ConfigError::CaFileEmpty { path }),
        Ok(roots) => Ok(roots),
        Err(source) => Err(ConfigError::CaFileInvalid { path, source }),
    }
}

/// Whether `url` names a loopback host: `127.0.0.0/8`, `::1`, `localhost` or a name under
/// `.localhost`. Plain http is allowed to these without [`super::VerifierConfig::allow_http`].
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
    }
}
