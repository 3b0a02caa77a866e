//! Local verification of RFC 9068 access tokens against the issuer's published keys.
//!
//! A verification reads the current key set through an `ArcSwap` (no lock, no I/O) and checks
//! the signature and claims. Keys are fetched by a background task when their `Cache-Control`
//! lifetime runs out, and on demand when a token names a `kid` we do not know, at most once per
//! cooldown so that forged `kid`s cannot make us hammer the issuer. When the issuer is down the
//! last good key set keeps serving.

mod discovery;
mod keys;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use url::Url;

pub use discovery::{metadata_url, parse_max_age, FetchError};
pub use keys::KeySet;

use crate::claims::AccessClaims;

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
}

impl VerifierConfig {
    pub fn new(issuer: Url, audience: impl Into<String>) -> Self {
        Self {
            issuer,
            audience: audience.into(),
            jwks_url: None,
            leeway: Duration::from_secs(30),
            min_refresh: Duration::from_secs(30),
            max_refresh: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(10),
            retry_interval: Duration::from_secs(2),
            max_token_bytes: 8 * 1024,
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a token was refused. The `Display` text is safe to send as `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is too large")]
    TooLarge,
    #[error("only RS256 is accepted")]
    UnsupportedAlgorithm,
    #[error("the token is not an access token (typ must be at+jwt)")]
    WrongType,
    #[error("the token names no key")]
    MissingKid,
    #[error("the token names an unknown key")]
    UnknownKid,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token lacks a required claim")]
    MissingClaim,
    #[error("the token uses a critical header extension that is not understood")]
    UnknownCritical,
    /// Not the client's fault: no key set could be fetched yet.
    #[error("signing keys are not available yet")]
    KeysUnavailable,
}

/// What the verifier knows about its keys, for readiness and metrics.
#[derive(Clone, Debug)]
pub struct KeySetState {
    pub n_keys: usize,
    /// Time since the key set in use was fetched; `None` before the first success.
    pub age: Option<Duration>,
    pub fetches: u64,
    pub fetch_failures: u64,
}

/// Cheap to clone; clones share keys and the background refresher.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: VerifierConfig,
    validation: Validation,
    keys: ArcSwap<KeySet>,
    loaded: std::sync::atomic::AtomicBool,
    http: reqwest::Client,
    refresh: tokio::sync::Mutex<RefreshState>,
    /// Bumped after every fetch attempt, so a waiter can tell that someone fetched for it.
    generation: AtomicU64,
    fetches: AtomicU64,
    fetch_failures: AtomicU64,
}

#[derive(Default)]
struct RefreshState {
    jwks_url: Option<Url>,
    last_attempt: Option<Instant>,
}

impl Verifier {
    /// Builds the verifier and starts its background refresher on the current tokio runtime.
    /// Returns at once: the first fetch happens in the background (see [`Verifier::is_ready`]).
    pub fn start(config: VerifierConfig) -> Result<Self, reqwest::Error> {
        let verifier = Self::new(config)?;
        tokio::spawn(refresh_loop(Arc::downgrade(&verifier.inner)));
        Ok(verifier)
    }

    /// A verifier with no background task; keys are fetched only by [`Verifier::refresh_now`]
    /// and on unknown `kid`s.
    pub fn new(config: VerifierConfig) -> Result<Self, reqwest::Error> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = config.leeway.min(Duration::from_secs(60)).as_secs();
        validation.validate_nbf = true;
        validation.validate_exp = true;
        validation.set_issuer(&[config.issuer.as_str().trim_end_matches('/')]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let http = reqwest::Client::builder()
            .timeout(config.fetch_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                refresh: tokio::sync::Mutex::new(RefreshState {
                    jwks_url: config.jwks_url.clone(),
                    last_attempt: None,
                }),
                config,
                validation,
                keys: ArcSwap::from_pointee(KeySet::empty()),
                loaded: std::sync::atomic::AtomicBool::new(false),
                http,
                generation: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                fetch_failures: AtomicU64::new(0),
            }),
        })
    }

    /// True once a key set has been fetched.
    pub fn is_ready(&self) -> bool {
        self.inner.loaded.load(Ordering::Acquire)
    }

    pub fn state(&self) -> KeySetState {
        let keys = self.inner.keys.load();
        KeySetState {
            n_keys: keys.len(),
            age: self.is_ready().then(|| keys.fetched_at.elapsed()),
            fetches: self.inner.fetches.load(Ordering::Relaxed),
            fetch_failures: self.inner.fetch_failures.load(Ordering::Relaxed),
        }
    }

    /// Fetches the key set now, whatever its freshness.
    pub async fn refresh_now(&self) -> Result<(), FetchError> {
        self.inner.fetch_single_flight(None, Duration::ZERO).await
    }

    /// Verifies signature, header and claims; see [`VerifyError`] for every refusal.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let inner = &*self.inner;
        if token.len() > inner.config.max_token_bytes {
            return Err(VerifyError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        // The algorithm comes from our allowlist; jku, x5u and jwk are never looked at.
        if header.alg != Algorithm::RS256 {
            return Err(VerifyError::UnsupportedAlgorithm);
        }
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(crate::ACCESS_TOKEN_TYP)
                || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(VerifyError::WrongType);
        }
        if header.crit.is_some() {
            return Err(VerifyError::UnknownCritical);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::MissingKid)?;

        let keys = inner.keys.load();
        if keys.get(kid).is_some() {
            return decode(token, &keys, kid, &inner.validation);
        }
        drop(keys);
        let seen = inner.generation.load(Ordering::Acquire);
        // Failures are counted and logged inside; the token is judged on whatever keys we hold.
        let _ = inner
            .fetch_single_flight(Some(seen), inner.config.unknown_kid_cooldown)
            .await;
        let keys = inner.keys.load();
        if keys.get(kid).is_some() {
            decode(token, &keys, kid, &inner.validation)
        } else if !self.is_ready() {
            Err(VerifyError::KeysUnavailable)
        } else {
            Err(VerifyError::UnknownKid)
        }
    }
}

fn decode(token: &str, keys: &KeySet, kid: &str, validation: &Validation) -> Result<AccessClaims, VerifyError> {
    let key = keys.get(kid).ok_or(VerifyError::UnknownKid)?;
    jsonwebtoken::decode::<AccessClaims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|err| match err.kind() {
            ErrorKind::InvalidSignature => VerifyError::BadSignature,
            ErrorKind::ExpiredSignature => VerifyError::Expired,
            ErrorKind::ImmatureSignature => VerifyError::NotYetValid,
            ErrorKind::InvalidIssuer => VerifyError::WrongIssuer,
            ErrorKind::InvalidAudience => VerifyError::WrongAudience,
            ErrorKind::MissingRequiredClaim(_) => VerifyError::MissingClaim,
            ErrorKind::InvalidAlgorithm => VerifyError::UnsupportedAlgorithm,
            _ => VerifyError::Malformed,
        })
}

impl Inner {
    /// One fetch at a time. `seen` is the generation the caller saw before waiting: if another
    /// caller fetched meanwhile, this one returns without fetching again. A fetch that started
    /// less than `cooldown` ago is not repeated either.
    async fn fetch_single_flight(&self, seen: Option<u64>, cooldown: Duration) -> Result<(), FetchError> {
        let mut state = self.refresh.lock().await;
        if seen.is_some_and(|seen| seen != self.generation.load(Ordering::Acquire)) {
            return Ok(());
        }
        if state.last_attempt.is_some_and(|at| at.elapsed() < cooldown) {
            return Ok(());
        }
        state.last_attempt = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch(&mut state).await;
        self.generation.fetch_add(1, Ordering::Release);
        if let Err(err) = &result {
            self.fetch_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %err, "fetching signing keys failed; keeping the keys held");
        }
        result
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<(), FetchError> {
        let jwks_url = match &state.jwks_url {
            Some(url) => url.clone(),
            None => {
                let url = discovery::discover_jwks_uri(&self.http, &self.config.issuer).await?;
                state.jwks_url = Some(url.clone());
                url
            }
        };
        let keys = discovery::fetch_keys(
            &self.http,
            &jwks_url,
            self.config.min_refresh,
            self.config.max_refresh.max(self.config.min_refresh),
        )
        .await?;
        tracing::debug!(n_keys = keys.len(), fresh_for = ?keys.fresh_for, "signing keys fetched");
        self.keys.store(Arc::new(keys));
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }
}

async fn refresh_loop(inner: Weak<Inner>) {
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else { return };
            match inner.fetch_single_flight(None, Duration::ZERO).await {
                Ok(()) => inner.keys.load().fresh_for,
                Err(_) => inner.config.retry_interval,
            }
        };
        tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
    }
}
