//! The cache in front of the token endpoint. Each distinct [`TokenRequest`] has a slot: the
//! token it holds, and at most one request in flight that every waiting caller shares. A token
//! is served as it is until its refresh time (lifetime minus a jittered margin); the first call
//! after that starts one request in a task of its own and is still answered with the old
//! token, as are the calls while that request runs, and a failed refresh leaves the old token
//! in service until it expires. Only a caller with no usable token waits. Nothing runs between
//! calls: a source that nobody asks refreshes nothing.
//!
//! Every instant offset by a value the issuer chose (`expires_in`, `Retry-After`) is computed
//! with `checked_add`: a panic here would end the task of the request, answer the waiting
//! callers with [`Error::Interrupted`] and record nothing, so the next call would try again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use url::Url;

use crate::config::{Config, Endpoint};
use crate::error::Error;
use crate::fetch::{discover, fetch, Issued, MAX_RETRY_AFTER};
use crate::token::{AccessToken, TokenRequest};

/// The longest wait between background refreshes that keep failing.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Client-credentials tokens (RFC 6749 §4.4), cached per [`TokenRequest`] and refreshed ahead
/// of expiry. Cloning is cheap and clones share the cache; needs a Tokio runtime.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: reqwest::Client,
    token_endpoint: tokio::sync::OnceCell<Url>,
    default_slot: Arc<Slot>,
    slots: Mutex<HashMap<TokenRequest, Arc<Slot>>>,
}

type Flight = Shared<BoxFuture<'static, Result<AccessToken, Error>>>;

struct Slot {
    request: TokenRequest,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    flight: Option<Flight>,
    /// No background refresh before this, after a failed one.
    retry_at: Option<Instant>,
    failures: u32,
    /// The issuer asked to be left alone until this instant (`Retry-After`): a caller with no
    /// usable token gets this error without a request.
    refused: Option<(Instant, Error)>,
}

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    /// When the answer arrived: [`TokenSource::invalidate`] leaves a younger token alone.
    fetched_at: Instant,
    refresh_at: Instant,
    expires_at: Instant,
}

/// `at + by`, or `at` plus at most [`MAX_RETRY_AFTER`] where that would not fit in an
/// `Instant`.
fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by)
        .or_else(|| at.checked_add(by.min(MAX_RETRY_AFTER)))
        .unwrap_or(at)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenSource {
    /// A source with `config`; makes no request until the first token is asked for.
    pub fn new(config: Config) -> Result<Self, Error> {
        if config.client_id.is_empty() {
            return Err(Error::Config("the client id is empty".into()));
        }
        let (Endpoint::Token(url) | Endpoint::Issuer(url)) = &config.endpoint;
        config.check_transport(url).map_err(Error::Config)?;
        let http = config.http()?;
        let default_slot = Arc::new(Slot::new(config.default_request.clone()));
        let token_endpoint = match &config.endpoint {
            Endpoint::Token(url) => tokio::sync::OnceCell::new_with(Some(url.clone())),
            Endpoint::Issuer(_) => tokio::sync::OnceCell::new(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                token_endpoint,
                default_slot,
                slots: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The token for the configured default request (`Config::default_request`).
    pub async fn token(&self) -> Result<AccessToken, Error> {
        self.get(self.inner.default_slot.clone()).await
    }

    /// The token for `request`: its scope and audience or resource.
    ///
    /// Each distinct `request` gets a slot that lives as long as the source: build requests
    /// from the service's own configuration, never from input it receives, or the cache grows
    /// without bound.
    pub async fn token_for(&self, request: &TokenRequest) -> Result<AccessToken, Error> {
        self.get(self.slot(request)).await
    }

    /// Drops `token` from the cache when it is still the one cached, as after an API answered
    /// 401 with it (RFC 6750 §3.1 `invalid_token`): the next call fetches a new one. A token
    /// already replaced is left alone, so a burst of 401s for one token makes one new request.
    ///
    /// A token fetched less than [`Config::min_invalidate_interval`] ago (default 5 s) is left
    /// alone too: an API that refuses every token (a wrong audience) then costs the issuer one
    /// request per interval, not one per API call. Such a call returns `false` and the next
    /// call gets the same token.
    ///
    /// Whether a cached token was dropped.
    pub fn invalidate(&self, token: &AccessToken) -> bool {
        let mut slots = vec![self.inner.default_slot.clone()];
        slots.extend(lock(&self.inner.slots).values().cloned());
        let now = Instant::now();
        let interval = self.inner.config.min_invalidate_interval;
        let (mut dropped, mut kept) = (false, false);
        for slot in slots {
            let mut state = lock(&slot.state);
            let Some(cached) = state.cached.as_ref().filter(|c| c.token.is(token)) else {
                continue;
            };
            if now.saturating_duration_since(cached.fetched_at) < interval {
                kept = true;
            } else {
                state.cached = None;
                dropped = true;
            }
        }
        if dropped {
            tracing::debug!("access token invalidated; the next call fetches a new one");
        } else if kept {
            tracing::debug!(
                ?interval,
                "access token not invalidated: fetched within the minimum interval"
            );
        }
        dropped
    }

    /// The settings this source runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    fn slot(&self, request: &TokenRequest) -> Arc<Slot> {
        if *request == self.inner.default_slot.request {
            return self.inner.default_slot.clone();
        }
        lock(&self.inner.slots)
            .entry(request.clone())
            .or_insert_with(|| Arc::new(Slot::new(request.clone())))
            .clone()
    }

    async fn get(&self, slot: Arc<Slot>) -> Result<AccessToken, Error> {
        let now = Instant::now();
        let flight = {
            let mut state = lock(&slot.state);
            if let Some(cached) = &state.cached {
                if now < cached.refresh_at {
                    return Ok(cached.token.clone());
                }
                if now < cached.expires_at {
                    let token = cached.token.clone();
                    let due = state.retry_at.is_none_or(|at| now >= at);
                    if state.flight.is_none() && due {
                        state.flight = Some(self.start(&slot));
                    }
                    return Ok(token);
                }
            }
            match (&state.flight, &state.refused) {
                (Some(flight), _) => flight.clone(),
                (None, Some((until, error))) if now < *until => return Err(error.clone()),
                (None, _) => {
                    let flight = self.start(&slot);
                    state.flight = Some(flight.clone());
                    flight
                }
            }
        };
        flight.await
    }

    /// The request runs as a task of its own, so that a caller that gives up does not cancel
    /// it for the others. Should the task end without an answer (a panic, a runtime shutting
    /// down), the guard clears the flight so that the next call starts another.
    fn start(&self, slot: &Arc<Slot>) -> Flight {
        let source = self.clone();
        let slot = slot.clone();
        let task = tokio::spawn(async move {
            let mut guard = FlightGuard(Some(slot.clone()));
            let result = source.refresh(&slot).await;
            guard.0 = None;
            result
        });
        async move { task.await.unwrap_or(Err(Error::Interrupted)) }
            .boxed()
            .shared()
    }

    async fn refresh(&self, slot: &Slot) -> Result<AccessToken, Error> {
        let result = match self.endpoint().await {
            Ok(endpoint) => {
                fetch(
                    &self.inner.http,
                    &self.inner.config,
                    &endpoint,
                    &slot.request,
                )
                .await
            }
            Err(error) => Err(error),
        };
        let now = Instant::now();
        let mut state = lock(&slot.state);
        state.flight = None;
        match result {
            Ok(issued) => {
                let token = issued.token.clone();
                state.cached = Some(schedule(&self.inner.config, issued, now, rand::random()));
                state.retry_at = None;
                state.failures = 0;
                state.refused = None;
                Ok(token)
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                let retry_after = match &error {
                    Error::Unavailable {
                        retry_after: Some(wait),
                        ..
                    } => {
                        state.refused = Some((later(now, *wait), error.clone()));
                        *wait
                    }
                    _ => Duration::from_secs(1u64 << state.failures.min(6).saturating_sub(1))
                        .min(MAX_BACKOFF),
                };
                state.retry_at = Some(later(now, retry_after));
                let serving = state.cached.as_ref().is_some_and(|c| now < c.expires_at);
                tracing::warn!(
                    error = %error,
                    serving_cached = serving,
                    retry_in = ?retry_after,
                    "token request failed"
                );
                Err(error)
            }
        }
    }

    async fn endpoint(&self) -> Result<Url, Error> {
        let Endpoint::Issuer(issuer) = &self.inner.config.endpoint else {
            if let Some(url) = self.inner.token_endpoint.get() {
                return Ok(url.clone());
            }
            return Err(Error::Config("no token endpoint".into()));
        };
        self.inner
            .token_endpoint
            .get_or_try_init(|| discover(&self.inner.http, &self.inner.config, issuer))
            .await
            .cloned()
    }
}

/// Clears the flight of its slot when dropped armed: the task ended without recording an
/// answer.
struct FlightGuard(Option<Arc<Slot>>);

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            lock(&slot.state).flight = None;
        }
    }
}

impl Slot {
    fn new(request: TokenRequest) -> Self {
        Self {
            request,
            state: Mutex::new(State::default()),
        }
    }
}

/// When a token issued with `issued.lifetime` stops being served (`expiry_skew` before its
/// end, at most half its lifetime) and when it is refreshed: `refresh_margin` before its end,
/// give or take `refresh_jitter` picked by `random` in `[0, 1)`. The margin is at most half of
/// the lifetime and the jitter at most half of the margin, so that a short-lived token is still
/// used for a quarter of its life and a fleet spreads its refreshes over the jitter. The
/// answer arrived at `fetched_at`.
fn schedule(config: &Config, issued: Issued, fetched_at: Instant, random: f64) -> Cached {
    let Issued {
        token,
        sent,
        lifetime,
    } = issued;
    let skew = config.expiry_skew.min(lifetime / 2);
    let margin = config.refresh_margin.min(lifetime / 2);
    let jitter = config.refresh_jitter.min(margin / 2);
    let lead = (margin - jitter) + (jitter * 2).mul_f64(random.clamp(0.0, 1.0));
    let expires_at = later(sent, lifetime - skew);
    let refresh_at = later(sent, lifetime.saturating_sub(lead)).min(expires_at);
    Cached {
        token,
        fetched_at,
        refresh_at,
        expires_at,
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("endpoint", &self.inner.config.endpoint)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
