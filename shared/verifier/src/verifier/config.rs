//! What a service tells its verifier, kept apart from the verifier so that settings code can
//! read the defaults without knowing how keys are fetched or tokens checked.

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

/// Where the keys come from and what a token must say.
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// Expected `iss`; also where the metadata is found unless `jwks_url` is set.
    pub issuer: Url,
    /// Expected member of `aud`.
    pub audience: String,
    /// Skips discovery when set.
    pub jwks_url: Option<Url>,
    /// Clock skew allowed on `exp` and `nbf`; capped at 60 seconds.
    pub leeway: Duration,
    /// Bounds on how long a fetched key set counts as fresh, whatever `Cache-Control` says.
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    /// At most one fetch per this interval is caused by tokens naming an unknown `kid`.
    pub unknown_kid_cooldown: Duration,
    /// Wait between attempts while the issuer cannot be reached.
    pub retry_interval: Duration,
    /// Longer tokens are refused before any parsing.
    pub max_token_bytes: usize,
    /// Timeout of one metadata or JWKS request.
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
}

impl VerifierConfig {
    pub fn new(issuer: Url, audience: impl Into<String>) -> Self {
        Self {
            issuer,
            audience: audience.into(),
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
        }
    }
}
