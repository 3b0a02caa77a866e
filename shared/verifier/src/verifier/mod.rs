//! A [`Verifier`] learns the signing keys once through the issuer's metadata (RFC 8414, or
//! OpenID Connect Discovery when the RFC 8414 document answers 404: `discovery.rs`) and JWKS,
//! and never calls the issuer per request.
//!
//! A verification reads the current key set through an `ArcSwap` (no lock, no I/O) and checks
//! the signature and claims. Keys are fetched by a background task when their `Cache-Control`
//! lifetime runs out, and on demand when a token names a `kid` we do not know, at most once per
//! cooldown so that forged `kid`s cannot make us hammer the issuer. When the issuer is down the
//! last good key set keeps serving, but only for [`VerifierConfig::max_stale`] past its
//! freshness: a key revoked at the issuer meanwhile would still verify, so past that bound the
//! verifier fails closed and refuses every token as [`VerifyError::KeysUnavailable`] (a 503,
//! not the client's fault) until a fetch succeeds.
//!
//! Tokens that verified are remembered (`cache.rs`, bounded by
//! [`VerifierConfig::token_cache_capacity`]) so that a token sent again costs a lookup; a hit is
//! judged on `exp` every time, and the cache starts empty with every key set installed.
//!
//! The verifier counts what it does (outcomes of verifications, key fetches, polls) in atomics
//! of its own, so counting is one atomic add; [`Verifier::state`] reads them, and the optional
//! `metrics` and `prometheus` features export them (`metrics.rs` says how and why).
//!
//! The issuer's revocation feed (`revocations.rs`) is polled in the background too, and every
//! token accepted, cache hits included, is checked against the list held after its signature
//! and claims: a hash lookup, so that revoking a token, a user or a client at the issuer
//! reaches this verifier within one poll interval without a call per request.
//!
//! This file keeps the per-request path over the verifier's shared state (size, staleness,
//! cache, keys) and readiness; `refresh.rs` fetches and installs keys. What a token must say is
//! judged in `jws.rs` alone ([`verify_with`], which this verifier calls for every token it has
//! not seen and which a service holding its own keys calls directly), so that a rule is read
//! and reviewed in one place; the configuration (with its builder, which checks the settings
//! once and reads a CA file), the refusals with their metric labels, and the metrics each
//! have their own file for the same reason.

mod cache;
mod config;
mod discovery;
mod error;
mod jws;
mod keys;
mod metrics;
mod refresh;
mod revocations;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

pub use config::{
    is_loopback, ConfigError, VerifierConfig, VerifierConfigBuilder, DEFAULT_LEEWAY,
    DEFAULT_MAX_STALE, DEFAULT_MAX_TOKEN_BYTES, DEFAULT_REVOCATION_MAX_STALE,
    DEFAULT_REVOCATION_POLL, DEFAULT_TOKEN_CACHE_CAPACITY, MAX_LEEWAY,
};
pub use discovery::{freshness, metadata_url, openid_configuration_url, parse_max_age, FetchError};
pub use error::VerifyError;
pub use jws::{verify_with, AudiencePolicy, Expiry, TokenRules};
pub use keys::KeySet;
pub use revocations::FeedPoll;

use cache::{Lookup, TokenCache};
use discovery::Http;
use metrics::Counters;
use refresh::{refresh_loop, RefreshState};
use revocations::{poll_loop, FeedState, FeedStatus, RevocationList};

use serde::de::DeserializeOwned;

use crate::claims::{AccessClaims, Claims};

/// What the verifier knows about its keys and its revocation list, for readiness and metrics.
/// `#[non_exhaustive]`: more may be reported later.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct KeySetState {
    /// Keys in the set held.
    pub n_keys: usize,
    /// Time since the key set in use was fetched; `None` before the first success.
    pub age: Option<Duration>,
    /// How long the key set in use counts as fresh: its `max-age` between the floor and the
    /// ceiling. Past it, a failing issuer leaves the verifier serving stale keys.
    pub fresh_for: Duration,
    /// Attempts to fetch the metadata and key set since the verifier was built.
    pub fetches: u64,
    /// Key fetches that failed since the verifier was built.
    pub fetch_failures: u64,
    /// Verifications that accepted the token.
    pub verified: u64,
    /// Verifications that refused the token, whatever the reason.
    pub refused: u64,
    /// Verifications answered from the cache of verified tokens.
    pub cache_hits: u64,
    /// Polls of the revocation feed.
    pub revocation_polls: u64,
    /// Polls of the revocation feed that failed.
    pub revocation_poll_failures: u64,
    /// Entries in the revocation list held.
    pub revocation_entries: usize,
    /// Time since the revocation feed last answered; `None` until a complete list arrived, or
    /// when the feed is off.
    pub revocation_age: Option<Duration>,
}

/// Whether a verifier can judge tokens now, for readiness probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// It holds a key set it may use.
    Ready,
    /// No key set has been fetched yet.
    NotFetched,
    /// The key set held was fetched `age` ago and has been stale for longer than
    /// [`VerifierConfig::max_stale`]; every token is refused until a fetch succeeds.
    TooStale {
        /// Time since the key set held was fetched.
        age: Duration,
    },
    /// The revocation feed is expected but no complete list has arrived yet.
    RevocationsNotFetched,
    /// The revocation feed last answered `age` ago, longer than
    /// [`VerifierConfig::revocation_max_stale`], and the verifier fails closed: every token is
    /// refused until the feed answers.
    RevocationsStale {
        /// Time since the feed last answered.
        age: Duration,
    },
    /// As `RevocationsStale`, but failing open: tokens are still judged on the list held, so
    /// the verifier can serve. A readiness probe should stay up (every replica loses the issuer
    /// at once, and taking them all out would turn an issuer outage into an outage of every
    /// API) and say what is wrong; the age is also a metric to alert on.
    ReadyWithStaleRevocations {
        /// Time since the feed last answered.
        age: Duration,
    },
}

/// Verifies access tokens against the keys of one issuer, fetched and refreshed as the module
/// docs say. Cheap to clone; clones share keys, cache, revocation list and the background
/// tasks, which end when the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: VerifierConfig,
    rules: TokenRules,
    keys: ArcSwap<KeySet>,
    /// Replaced by an empty one after every key set is installed (see `cache.rs`).
    cache: ArcSwap<TokenCache>,
    loaded: AtomicBool,
    http: Http,
    refresh: tokio::sync::Mutex<RefreshState>,
    /// Bumped after every fetch attempt, so a waiter can tell that someone fetched for it.
    generation: AtomicU64,
    /// Set once the key set in use was found too stale and that was logged; cleared when a
    /// fetched set is installed. One log line per outage, not one per refused request.
    stale_reported: AtomicBool,
    /// What the revocation feed has said; read on every verification.
    revocations: ArcSwap<RevocationList>,
    /// Held while polling the feed: one poll at a time.
    feed: tokio::sync::Mutex<FeedState>,
    /// Shared with a Prometheus collector, which may outlive the verifier.
    counters: Arc<Counters>,
}

impl Verifier {
    /// Builds the verifier and starts its background refresher and, unless
    /// [`VerifierConfig::revocation_poll`] is zero, its revocation poller on the current tokio
    /// runtime. Returns at once: the first fetches happen in the background (see
    /// [`Verifier::readiness`], which waits for the keys and for the first revocation list
    /// unless the issuer advertises no feed). With the `metrics` feature it also starts a task
    /// that sets the metrics' gauges every 5 s (the recorder must be installed before this call:
    /// the verifier takes its metric handles when built).
    pub fn start(config: VerifierConfig) -> Result<Self, reqwest::Error> {
        let verifier = Self::new(config)?;
        let inner = Arc::downgrade(&verifier.inner);
        #[cfg(feature = "metrics")]
        tokio::spawn(metrics::gauge_loop(inner.clone()));
        if !verifier.inner.config.revocation_poll.is_zero() {
            verifier
                .inner
                .revocations
                .store(Arc::new(RevocationList::new(FeedStatus::Pending)));
            tokio::spawn(poll_loop(inner.clone()));
        }
        tokio::spawn(refresh_loop(inner));
        Ok(verifier)
    }

    /// A verifier with no background task; keys are fetched only by [`Verifier::refresh_now`]
    /// and on unknown `kid`s, the revocation list only by [`Verifier::poll_revocations_now`]
    /// (readiness does not wait for it before the first poll finds the feed).
    ///
    /// # Errors
    ///
    /// Only when the verifier's own HTTP client cannot be built: a CA-file certificate the
    /// TLS library refuses, or a system store holding no usable certificate. With a client
    /// given to [`VerifierConfigBuilder::http_client`] it does not fail.
    pub fn new(config: VerifierConfig) -> Result<Self, reqwest::Error> {
        let rules = TokenRules::from_config(&config);
        let http = Http::new(&config)?;
        let cache = TokenCache::new(config.token_cache_capacity);
        let verifier = Self {
            inner: Arc::new(Inner {
                cache: ArcSwap::from_pointee(cache),
                refresh: tokio::sync::Mutex::new(RefreshState {
                    jwks_url: config.jwks_url.clone(),
                    last_attempt: None,
                }),
                config,
                rules,
                keys: ArcSwap::from_pointee(KeySet::empty()),
                loaded: AtomicBool::new(false),
                http,
                generation: AtomicU64::new(0),
                stale_reported: AtomicBool::new(false),
                revocations: ArcSwap::from_pointee(RevocationList::new(FeedStatus::NotPolled)),
                feed: tokio::sync::Mutex::new(FeedState::default()),
                counters: Arc::new(Counters::new()),
            }),
        };
        verifier.inner.publish_gauges();
        Ok(verifier)
    }

    /// A verifier that holds `keys` from the start, for embedding (keys shipped with a service)
    /// and for tests and fuzzing that must not touch the network. It is ready at once and starts
    /// no background task. As with [`Verifier::new`], a token naming an unknown `kid` may cause a
    /// fetch from the issuer, but the `unknown_kid_cooldown` counts from construction: with a
    /// long cooldown the verifier stays offline and answers [`VerifyError::UnknownKid`]. The
    /// given keys are never refused as stale ([`VerifierConfig::max_stale`] applies to fetched
    /// ones).
    pub fn with_keys(config: VerifierConfig, keys: KeySet) -> Result<Self, reqwest::Error> {
        let verifier = Self::new(config)?;
        let inner = &*verifier.inner;
        inner.install(keys, None);
        // Nobody else can hold the lock of a verifier that has not been returned yet.
        if let Ok(mut state) = inner.refresh.try_lock() {
            state.last_attempt = Some(Instant::now());
        }
        Ok(verifier)
    }

    /// True once the verifier holds a key set, fetched or given to [`Verifier::with_keys`]
    /// (however stale: see [`Verifier::readiness`]).
    pub fn is_ready(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    /// Whether tokens can be judged now: a key set is held and not too stale to use, and the
    /// revocation list, where the issuer publishes one, has arrived and (when failing closed)
    /// is not stale.
    pub fn readiness(&self) -> Readiness {
        if !self.is_ready() {
            return Readiness::NotFetched;
        }
        let keys = self.inner.keys.load();
        if keys.too_stale(Instant::now()) {
            return Readiness::TooStale {
                age: keys.fetched_at.elapsed(),
            };
        }
        let revocations = self.inner.revocations.load();
        match revocations.age() {
            _ if revocations.status == FeedStatus::Pending => Readiness::RevocationsNotFetched,
            Some(age) if age > self.inner.config.revocation_max_stale => {
                if self.inner.config.revocation_fail_closed {
                    Readiness::RevocationsStale { age }
                } else {
                    Readiness::ReadyWithStaleRevocations { age }
                }
            }
            _ => Readiness::Ready,
        }
    }

    /// The key set and revocation list held, and what the verifier counted so far: these
    /// counts need no metrics feature.
    pub fn state(&self) -> KeySetState {
        self.inner.state()
    }

    /// Registers a collector of the verifier's metrics in `registry` (feature `prometheus`),
    /// all named `oauth2_jwt_verifier_*`: the counters
    /// `oauth2_jwt_verifier_verifications_total{outcome}` (`ok` or the refusal's
    /// [`VerifyError::name`]), `oauth2_jwt_verifier_token_cache_hits_total`,
    /// `oauth2_jwt_verifier_jwks_fetches_total`, `oauth2_jwt_verifier_jwks_fetch_failures_total`
    /// and `oauth2_jwt_verifier_revocation_polls_total{result}` (`complete`, `delta`,
    /// `not_modified`, `off`, `failed`), every labelled series at 0 from the start; and the
    /// gauges `oauth2_jwt_verifier_jwks_keys`, `oauth2_jwt_verifier_jwks_age_seconds` (-1 until a
    /// key set has been fetched), `oauth2_jwt_verifier_jwks_fresh_for_seconds` (age above it:
    /// the keys are stale), `oauth2_jwt_verifier_revocation_entries` and
    /// `oauth2_jwt_verifier_revocation_feed_age_seconds` (-1 until a complete list arrived, or
    /// with the feed off), read at scrape time.
    ///
    /// The registry holds no strong reference: it does not keep the verifier alive (once it is
    /// dropped, the counters stay and the gauges go). A second verifier registered in the same
    /// registry is refused (`AlreadyReg`), not added up: give each verifier a registry of its
    /// own, made with `Registry::new_custom` and a label that tells them apart when their
    /// samples are served on one page.
    #[cfg(feature = "prometheus")]
    pub fn register_metrics(&self, registry: &prometheus::Registry) -> prometheus::Result<()> {
        let inner = Arc::downgrade(&self.inner);
        let state = Box::new(move || inner.upgrade().map(|inner| inner.state()));
        let collector = metrics::VerifierCollector::new(Arc::clone(&self.inner.counters), state)?;
        registry.register(Box::new(collector))
    }

    /// Polls the revocation feed now (finding it through the issuer's metadata first, if not
    /// yet known), one poll at a time.
    pub async fn poll_revocations_now(&self) -> Result<FeedPoll, FetchError> {
        self.inner.poll_revocations().await
    }

    /// Fetches the key set now, whatever its freshness.
    pub async fn refresh_now(&self) -> Result<(), FetchError> {
        self.inner.fetch_single_flight(None, Duration::ZERO).await
    }

    /// Verifies signature, header and claims; see [`VerifyError`] for every refusal. Each call
    /// is counted by outcome (`oauth2_jwt_verifier_verifications_total{outcome}`).
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let result = self.check(token).await;
        self.inner.counters.count(&result);
        result
    }

    /// As [`Verifier::verify`], and reads the same payload into the service's own type `X`
    /// as well (custom claims: roles, a tenant): the access-token claims are checked first, so
    /// `X` is only ever read from a token that verified. A payload that `X` cannot be read
    /// from is [`VerifyError::MissingClaim`]. With [`NoExtra`](crate::NoExtra) nothing more is parsed.
    pub async fn verify_claims<X: DeserializeOwned + 'static>(
        &self,
        token: &str,
    ) -> Result<Claims<X>, VerifyError> {
        let result = self
            .check(token)
            .await
            .and_then(|access| Claims::read(access, token));
        self.inner.counters.count(&result);
        result
    }

    async fn check(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let inner = &*self.inner;
        if inner.rules.too_large(token) {
            return Err(VerifyError::TooLarge);
        }
        // Fail closed: keys that may have been revoked since are not trusted, cached verdicts
        // included.
        let keys = inner.keys.load();
        if keys.too_stale(Instant::now()) {
            inner.report_stale(&keys);
            return Err(VerifyError::KeysUnavailable);
        }
        drop(keys);
        if inner.config.revocation_fail_closed
            && inner
                .revocations
                .load()
                .unusable(inner.config.revocation_max_stale)
        {
            return Err(VerifyError::RevocationsUnavailable);
        }
        // Loaded before the keys: whatever this call verifies, it verifies with keys at least as
        // new as the cache it goes into (see `Inner::install`).
        let cache = inner.cache.load_full();
        if !cache.is_enabled() {
            return self
                .check_uncached(token)
                .await
                .and_then(|claims| inner.unrevoked(claims));
        }
        let key = TokenCache::key(token);
        match cache.get(&key, unix_now(), inner.rules.leeway) {
            Lookup::Valid(claims) => {
                inner.counters.count_cache_hit();
                // The list may have grown since the token was remembered.
                return inner.unrevoked(claims);
            }
            Lookup::Expired => return Err(VerifyError::Expired),
            Lookup::Miss => {}
        }
        let claims = inner.unrevoked(self.check_uncached(token).await?)?;
        cache.insert(key, &claims);
        Ok(claims)
    }

    /// [`verify_with`] over the keys held; a `kid` they lack causes one fetch (single-flight,
    /// at most once per cooldown) and a second try over whatever keys are held then.
    async fn check_uncached(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let inner = &*self.inner;
        let first = verify_with(token, &inner.keys.load(), &inner.rules, unix_now());
        if !matches!(first, Err(VerifyError::UnknownKid)) {
            return first;
        }
        let seen = inner.generation.load(Ordering::Acquire);
        // The fetch runs in a task of its own: a caller that goes away (a client hanging up
        // with a made-up `kid`) must not cancel it halfway, after it took the cooldown but
        // before it installed anything, which would keep a newly published key unknown for
        // the whole cooldown. Failures are counted and logged inside; the token is judged on
        // whatever keys we hold.
        // Only a caller that would start a fetch spawns one: while one is in flight or the
        // cooldown runs, callers wait in place (a caller going away then cancels only its own
        // wait), so a flood of made-up `kid`s leaves no pile of tasks behind.
        let cooldown = inner.config.unknown_kid_cooldown;
        let would_fetch = inner
            .refresh
            .try_lock()
            .is_ok_and(|state| state.last_attempt.is_none_or(|at| at.elapsed() >= cooldown));
        let fetcher = Arc::clone(&self.inner);
        let fetch = async move { fetcher.fetch_single_flight(Some(seen), cooldown).await };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) if would_fetch => drop(runtime.spawn(fetch).await),
            _ => drop(fetch.await),
        }
        match verify_with(token, &inner.keys.load(), &inner.rules, unix_now()) {
            Err(VerifyError::UnknownKid) if !self.is_ready() => Err(VerifyError::KeysUnavailable),
            second => second,
        }
    }
}

impl<X: DeserializeOwned + 'static> Claims<X> {
    /// `access`, with `extra` read from the payload of `token`, which must be the token
    /// `access` was verified from (see [`jws::extra_claims`]). Kept here rather than in
    /// `claims.rs`, which sits below the verifier and names none of its refusals.
    pub(crate) fn read(access: AccessClaims, token: &str) -> Result<Self, VerifyError> {
        Ok(Self::new(access, jws::extra_claims(token)?))
    }
}

impl Inner {
    fn state(&self) -> KeySetState {
        let keys = self.keys.load();
        let revocations = self.revocations.load();
        let counters = &self.counters;
        let polls = (0..metrics::POLL_RESULTS.len()).map(|index| counters.polls(index));
        KeySetState {
            n_keys: keys.len(),
            age: self
                .loaded
                .load(Ordering::Acquire)
                .then(|| keys.fetched_at.elapsed()),
            fresh_for: keys.fresh_for,
            fetches: counters.fetches(),
            fetch_failures: counters.fetch_failures(),
            verified: counters.outcome(0),
            refused: counters.refused(),
            cache_hits: counters.cache_hits(),
            revocation_polls: polls.sum(),
            revocation_poll_failures: counters.polls(metrics::POLL_RESULTS.len() - 1),
            revocation_entries: revocations.entries.len(),
            revocation_age: revocations.age(),
        }
    }

    /// The claims of a token that verified, unless the revocation list held refuses it.
    fn unrevoked(&self, claims: AccessClaims) -> Result<AccessClaims, VerifyError> {
        if self.revocations.load().entries.refuses(&claims) {
            Err(VerifyError::Revoked)
        } else {
            Ok(claims)
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests;
