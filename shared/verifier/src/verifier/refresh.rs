//! Keeping the verifier's keys: fetching them (single-flight, with a cooldown for unknown
//! `kid`s), installing a fetched set with an empty cache, the background refresh that follows
//! `Cache-Control`, and saying once per outage that the keys held are too stale to use. Kept
//! apart from `mod.rs` so that the per-request path there reads without the I/O around it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use url::Url;

use super::cache::TokenCache;
use super::{discovery, FetchError, Inner, KeySet};

/// Where the keys are and when they were last asked for; held under the refresh lock.
#[derive(Default)]
pub(super) struct RefreshState {
    pub(super) jwks_url: Option<Url>,
    pub(super) last_attempt: Option<Instant>,
}

impl Inner {
    /// Installs a key set, then an empty cache: a token in the new cache was verified with
    /// these keys or newer ones, and tokens of keys no longer published are forgotten.
    /// `max_stale` bounds how long the set is used past its freshness (`None`: no bound).
    pub(super) fn install(&self, mut keys: KeySet, max_stale: Option<Duration>) {
        // An instant beyond what `Instant` can hold is no bound at all.
        keys.usable_until = max_stale.and_then(|max_stale| {
            keys.fetched_at
                .checked_add(keys.fresh_for)?
                .checked_add(max_stale)
        });
        self.keys.store(Arc::new(keys));
        self.cache
            .store(Arc::new(TokenCache::new(self.config.token_cache_capacity)));
        self.loaded.store(true, Ordering::Release);
        self.publish_gauges();
        if self.stale_reported.swap(false, Ordering::AcqRel) {
            tracing::info!("fresh signing keys fetched; accepting tokens again");
        }
    }

    /// Logs, once per outage, that the keys held are too stale and tokens are refused.
    pub(super) fn report_stale(&self, keys: &KeySet) {
        if self.stale_reported.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::error!(
            age_s = keys.fetched_at.elapsed().as_secs(),
            fresh_for_s = keys.fresh_for.as_secs(),
            max_stale_s = self.config.max_stale.map_or(0, |bound| bound.as_secs()),
            "the signing keys held have been stale for longer than allowed (max_stale) and the \
             issuer cannot be reached: refusing every token with 503 until a key fetch succeeds"
        );
    }

    /// One fetch at a time. `seen` is the generation the caller saw before waiting: if another
    /// caller fetched meanwhile, this one returns without fetching again. A fetch that started
    /// less than `cooldown` ago is not repeated either.
    pub(super) async fn fetch_single_flight(
        &self,
        seen: Option<u64>,
        cooldown: Duration,
    ) -> Result<(), FetchError> {
        let mut state = self.refresh.lock().await;
        if seen.is_some_and(|seen| seen != self.generation.load(Ordering::Acquire)) {
            return Ok(());
        }
        if state.last_attempt.is_some_and(|at| at.elapsed() < cooldown) {
            return Ok(());
        }
        state.last_attempt = Some(Instant::now());
        let result = self.fetch(&mut state).await;
        self.generation.fetch_add(1, Ordering::Release);
        self.counters.count_fetch(result.is_err());
        if let Err(err) = &result {
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
        self.install(keys, self.config.max_stale);
        Ok(())
    }
}

pub(super) async fn refresh_loop(inner: Weak<Inner>) {
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else { return };
            match inner.fetch_single_flight(None, Duration::ZERO).await {
                Ok(()) => inner.keys.load().fresh_for,
                Err(_) => {
                    // Said as soon as it happens, whether or not tokens arrive to be refused.
                    let keys = inner.keys.load();
                    if keys.too_stale(Instant::now()) {
                        inner.report_stale(&keys);
                    }
                    inner.config.retry_interval
                }
            }
        };
        tokio::time::sleep(wait.max(Duration::from_millis(200))).await;
    }
}
