//! What the verifier counts, and how a service that embeds it gets to see it.
//!
//! The library runs inside someone else's service, which has its own metrics registry (or
//! none) and its own metric names. So the library imposes no metrics backend: it counts in
//! plain atomics of its own, created once with the verifier, so that counting a verification is
//! one relaxed atomic add with no allocation and no lock, and [`super::Verifier::state`] reads
//! them with no backend at all. Two optional features export the same numbers:
//!
//! - `metrics`: through the [`metrics`](https://docs.rs/metrics) facade, to whatever recorder
//!   the service installed. Every handle is created once, when the verifier is built (so the
//!   recorder must be installed before), which also describes each metric and registers every
//!   labelled series, at 0 where the recorder exports what it registered. The gauges are set
//!   where their value changes and on a tick of their own (see `facade.rs`).
//! - `prometheus`: a collector for the service's `prometheus::Registry`
//!   ([`super::Verifier::register_metrics`]) that reads the atomics and the verifier's state at
//!   scrape time (see `collector.rs`).
//!
//! Every name starts with `oauth2_jwt_verifier_`, so that it cannot collide with the
//! service's own `jwks_keys` or `token_cache_hits_total`. The names and help texts are written
//! once, here, for both backends.

use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "prometheus")]
pub(super) mod collector;
#[cfg(feature = "metrics")]
mod facade;

#[cfg(feature = "prometheus")]
pub(super) use collector::VerifierCollector;
#[cfg(feature = "metrics")]
pub(super) use facade::gauge_loop;

use super::error::Outcome;
use super::{FeedPoll, Inner, VerifyError};

/// The names and help texts, for the backends.
#[cfg(any(feature = "metrics", feature = "prometheus"))]
mod names {
    /// A metric's name and help text, the same for every backend.
    pub(super) struct Metric {
        pub(super) name: &'static str,
        pub(super) help: &'static str,
    }

    pub(super) const VERIFICATIONS: Metric = Metric {
        name: "oauth2_jwt_verifier_verifications_total",
        help: "Access token verifications by outcome (ok or why the token was refused)",
    };
    pub(super) const CACHE_HITS: Metric = Metric {
        name: "oauth2_jwt_verifier_token_cache_hits_total",
        help: "Verifications answered from the cache of verified tokens",
    };
    pub(super) const FETCHES: Metric = Metric {
        name: "oauth2_jwt_verifier_jwks_fetches_total",
        help: "Attempts to fetch the issuer's metadata and key set",
    };
    pub(super) const FETCH_FAILURES: Metric = Metric {
        name: "oauth2_jwt_verifier_jwks_fetch_failures_total",
        help: "Key set fetch attempts that failed",
    };
    pub(super) const POLLS: Metric = Metric {
        name: "oauth2_jwt_verifier_revocation_polls_total",
        help: "Polls of the issuer's revocation feed by result (what it found, or failed)",
    };
    pub(super) const KEYS: Metric = Metric {
        name: "oauth2_jwt_verifier_jwks_keys",
        help: "Verification keys in the key set in use",
    };
    pub(super) const KEYS_AGE: Metric = Metric {
        name: "oauth2_jwt_verifier_jwks_age_seconds",
        help: "Time since the key set in use was fetched; -1 before the first successful fetch",
    };
    pub(super) const KEYS_FRESH_FOR: Metric = Metric {
        name: "oauth2_jwt_verifier_jwks_fresh_for_seconds",
        help: "How long the key set in use counts as fresh (its max-age, clamped); older is stale",
    };
    pub(super) const REVOCATION_ENTRIES: Metric = Metric {
        name: "oauth2_jwt_verifier_revocation_entries",
        help: "Entries (tokens, users, clients) in the revocation list held",
    };
    pub(super) const REVOCATION_AGE: Metric = Metric {
        name: "oauth2_jwt_verifier_revocation_feed_age_seconds",
        help: "Time since the revocation feed last answered; -1 before the first complete list \
               or when the feed is off",
    };
}

/// Every `result` of a revocation poll: what it found, or `failed`.
pub(super) const POLL_RESULTS: [&str; 5] = ["complete", "delta", "not_modified", "off", "failed"];

/// What the verifier counts: its own atomics, and the facade's handles when that is on.
#[derive(Default)]
pub(super) struct Counters {
    /// Verifications by outcome, at [`Outcome::index`].
    by_outcome: [AtomicU64; Outcome::COUNT],
    cache_hits: AtomicU64,
    fetches: AtomicU64,
    fetch_failures: AtomicU64,
    /// Polls by result, at their place in [`POLL_RESULTS`].
    by_poll: [AtomicU64; POLL_RESULTS.len()],
    #[cfg(feature = "metrics")]
    facade: facade::Handles,
}

impl Counters {
    /// The counters at 0; with the `metrics` feature, also describes every metric to the
    /// recorder installed now and takes a handle for each series.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Counts one verification under its outcome.
    pub(super) fn count<T>(&self, result: &Result<T, VerifyError>) {
        let index = Outcome::of(result).index();
        if let Some(counter) = self.by_outcome.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        self.facade.count(index);
    }

    pub(super) fn count_cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.facade.cache_hits.increment(1);
    }

    /// Counts one fetch attempt, and whether it failed.
    pub(super) fn count_fetch(&self, failed: bool) {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.fetch_failures.fetch_add(1, Ordering::Relaxed);
        }
        #[cfg(feature = "metrics")]
        self.facade.count_fetch(failed);
    }

    /// Counts one poll of the revocation feed: what it found, or `None` when it failed.
    pub(super) fn count_poll(&self, found: Option<FeedPoll>) {
        let label = found.map_or("failed", FeedPoll::label);
        if let Some(index) = POLL_RESULTS.iter().position(|result| *result == label) {
            if let Some(counter) = self.by_poll.get(index) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            #[cfg(feature = "metrics")]
            self.facade.count_poll(index);
        }
    }

    /// Verifications ended in the outcome at `index` ([`Outcome::index`]).
    pub(super) fn outcome(&self, index: usize) -> u64 {
        self.by_outcome
            .get(index)
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }

    /// Verifications that ended in a refusal.
    pub(super) fn refused(&self) -> u64 {
        (1..Outcome::COUNT).map(|index| self.outcome(index)).sum()
    }

    /// Polls that ended in the result at `index` in [`POLL_RESULTS`].
    pub(super) fn polls(&self, index: usize) -> u64 {
        self.by_poll
            .get(index)
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }

    pub(super) fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    pub(super) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub(super) fn fetch_failures(&self) -> u64 {
        self.fetch_failures.load(Ordering::Relaxed)
    }
}

impl Inner {
    /// Sets the facade's gauges from the state now (with the `metrics` feature; nothing
    /// otherwise). Called where the key set or the revocation list changes and on each tick of
    /// the gauge loop.
    pub(super) fn publish_gauges(&self) {
        #[cfg(feature = "metrics")]
        self.counters.facade.publish(&self.state());
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Verifier, VerifierConfig, VerifyError};

    /// Whatever the features, the counts are kept for [`Verifier::state`].
    #[tokio::test]
    async fn state_counts_verifications_fetches_and_polls_with_no_backend() {
        let config = VerifierConfig::new("http://127.0.0.1:9".parse().unwrap(), "api");
        let verifier = Verifier::new(config).unwrap();
        let start = verifier.state();
        assert_eq!(
            (
                start.verified,
                start.refused,
                start.fetches,
                start.revocation_polls
            ),
            (0, 0, 0, 0)
        );
        for _ in 0..2 {
            assert_eq!(verifier.verify("x").await, Err(VerifyError::Malformed));
        }
        assert!(verifier.refresh_now().await.is_err(), "nothing on port 9");
        assert!(verifier.poll_revocations_now().await.is_err());
        let state = verifier.state();
        assert_eq!((state.verified, state.refused, state.cache_hits), (0, 2, 0));
        assert_eq!((state.fetches, state.fetch_failures), (1, 1));
        assert_eq!(
            (state.revocation_polls, state.revocation_poll_failures),
            (1, 1)
        );
    }
}
