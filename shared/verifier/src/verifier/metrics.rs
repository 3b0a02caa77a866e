//! The verifier's Prometheus metrics: counters created once, so that counting a verification
//! is one atomic add with no allocation or lock, and a collector that reads the key set's size
//! and age only when scraped.
//!
//! The collector reads the verifier's state through a function that holds no strong reference,
//! so a registry outliving the verifier does not keep it (and its refresher) alive.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts};

use super::error::Outcome;
use super::{FeedPoll, KeySetState, VerifyError};

/// What the verifier counts.
pub(super) struct Counters {
    /// `token_verifications_total{outcome}`; `by_outcome[i]` is its child for the outcome at
    /// index `i` (see [`Outcome::index`]).
    verifications: IntCounterVec,
    pub(super) by_outcome: [IntCounter; Outcome::COUNT],
    pub(super) fetches: IntCounter,
    pub(super) fetch_failures: IntCounter,
    pub(super) cache_hits: IntCounter,
    /// `revocation_polls_total{result}`; `by_poll[i]` is its child for [`POLL_RESULTS`]`[i]`.
    polls: IntCounterVec,
    by_poll: [IntCounter; POLL_RESULTS.len()],
}

/// Every `result` of a revocation poll: what it found, or `failed`.
const POLL_RESULTS: [&str; 5] = ["complete", "delta", "not_modified", "off", "failed"];

impl Counters {
    pub(super) fn new() -> prometheus::Result<Self> {
        let verifications = IntCounterVec::new(
            Opts::new(
                "token_verifications_total",
                "Access token verifications by outcome (ok or why the token was refused)",
            ),
            &["outcome"],
        )?;
        // Every outcome is exported from the start, at 0, so that rates need no absent() guard.
        let mut outcomes = Outcome::all();
        let by_outcome = std::array::from_fn(|_| {
            let label = outcomes.next().map_or("", |outcome| outcome.label());
            verifications.with_label_values(&[label])
        });
        let polls = IntCounterVec::new(
            Opts::new(
                "revocation_polls_total",
                "Polls of the issuer's revocation feed by result (what it found, or failed)",
            ),
            &["result"],
        )?;
        let by_poll = POLL_RESULTS.map(|result| polls.with_label_values(&[result]));
        Ok(Self {
            verifications,
            by_outcome,
            polls,
            by_poll,
            fetches: IntCounter::new(
                "jwks_fetches_total",
                "Attempts to fetch the issuer's metadata and key set",
            )?,
            fetch_failures: IntCounter::new(
                "jwks_fetch_failures_total",
                "Key set fetch attempts that failed",
            )?,
            cache_hits: IntCounter::new(
                "token_cache_hits_total",
                "Verifications answered from the cache of verified tokens",
            )?,
        })
    }

    /// Counts one poll of the revocation feed: what it found, or `None` when it failed.
    pub(super) fn count_poll(&self, found: Option<FeedPoll>) {
        let label = found.map_or("failed", FeedPoll::label);
        if let Some(index) = POLL_RESULTS.iter().position(|result| *result == label) {
            self.by_poll[index].inc();
        }
    }

    /// Counts one verification under its outcome.
    pub(super) fn count<T>(&self, result: &Result<T, VerifyError>) {
        if let Some(counter) = self.by_outcome.get(Outcome::of(result).index()) {
            counter.inc();
        }
    }
}

/// Reads the state of the verifier being exported; `None` once it has been dropped.
pub(super) type StateSource = Box<dyn Fn() -> Option<KeySetState> + Send + Sync>;

/// Exports the verifier's counters, and its key set's size and age as read at scrape time.
pub(super) struct VerifierCollector {
    state: StateSource,
    verifications: IntCounterVec,
    fetches: IntCounter,
    fetch_failures: IntCounter,
    cache_hits: IntCounter,
    polls: IntCounterVec,
    /// Set from the verifier's state in `collect`, then exported.
    n_keys: IntGauge,
    age: Gauge,
    fresh_for: Gauge,
    revocation_entries: IntGauge,
    revocation_age: Gauge,
    descs: Vec<Desc>,
}

impl VerifierCollector {
    pub(super) fn new(counters: &Counters, state: StateSource) -> prometheus::Result<Self> {
        let n_keys = IntGauge::new("jwks_keys", "Verification keys in the key set in use")?;
        let age = Gauge::new(
            "jwks_age_seconds",
            "Time since the key set in use was fetched; -1 before the first successful fetch",
        )?;
        let fresh_for = Gauge::new(
            "jwks_fresh_for_seconds",
            "How long the key set in use counts as fresh (its max-age, clamped); older is stale",
        )?;
        let revocation_entries = IntGauge::new(
            "revocation_entries",
            "Entries (tokens, users, clients) in the revocation list held",
        )?;
        let revocation_age = Gauge::new(
            "revocation_feed_age_seconds",
            "Time since the revocation feed last answered; -1 before the first complete list \
             or when the feed is off",
        )?;
        let descs = [
            counters.verifications.desc(),
            counters.fetches.desc(),
            counters.fetch_failures.desc(),
            counters.cache_hits.desc(),
            n_keys.desc(),
            age.desc(),
            fresh_for.desc(),
            counters.polls.desc(),
            revocation_entries.desc(),
            revocation_age.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        Ok(Self {
            state,
            verifications: counters.verifications.clone(),
            fetches: counters.fetches.clone(),
            fetch_failures: counters.fetch_failures.clone(),
            cache_hits: counters.cache_hits.clone(),
            polls: counters.polls.clone(),
            n_keys,
            revocation_entries,
            revocation_age,
            age,
            fresh_for,
            descs,
        })
    }
}

impl Collector for VerifierCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.verifications.collect();
        families.extend(self.fetches.collect());
        families.extend(self.fetch_failures.collect());
        families.extend(self.cache_hits.collect());
        families.extend(self.polls.collect());
        if let Some(state) = (self.state)() {
            self.n_keys
                .set(i64::try_from(state.n_keys).unwrap_or(i64::MAX));
            self.age
                .set(state.age.map_or(-1.0, |age| age.as_secs_f64()));
            self.fresh_for.set(state.fresh_for.as_secs_f64());
            families.extend(self.n_keys.collect());
            families.extend(self.age.collect());
            families.extend(self.fresh_for.collect());
            self.revocation_entries
                .set(i64::try_from(state.revocation_entries).unwrap_or(i64::MAX));
            self.revocation_age
                .set(state.revocation_age.map_or(-1.0, |age| age.as_secs_f64()));
            families.extend(self.revocation_entries.collect());
            families.extend(self.revocation_age.collect());
        }
        families
    }
}

/// The registry in the Prometheus text format, for the tests.
#[cfg(test)]
pub(crate) fn render_text(registry: &prometheus::Registry) -> String {
    use prometheus::Encoder;
    let mut buffer = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if encoder.encode(&registry.gather(), &mut buffer).is_err() {
        return String::new();
    }
    String::from_utf8(buffer).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prometheus::Registry;
    use url::Url;

    use super::super::{Verifier, VerifierConfig};
    use super::*;

    fn verifier() -> Verifier {
        let config = VerifierConfig::new(Url::parse("http://127.0.0.1:9").unwrap(), "api");
        Verifier::new(config).unwrap()
    }

    fn scrape(registry: &Registry) -> String {
        crate::verifier::metrics::render_text(registry)
    }

    #[tokio::test]
    async fn verifications_are_counted_by_outcome_and_keys_read_at_scrape_time() {
        let verifier = verifier();
        let registry = Registry::new();
        verifier.register_metrics(&registry).unwrap();
        let before = scrape(&registry);
        assert!(
            before.contains("token_verifications_total{outcome=\"ok\"} 0"),
            "{before}"
        );
        assert!(before.contains("jwks_keys 0"), "{before}");
        assert!(before.contains("jwks_age_seconds -1"), "{before}");
        assert!(before.contains("jwks_fetches_total 0"), "{before}");
        assert!(before.contains("jwks_fetch_failures_total 0"), "{before}");

        assert_eq!(
            verifier.verify("not a token").await,
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verifier.verify("not a token either").await,
            Err(VerifyError::Malformed)
        );
        let too_large = "a".repeat(9000);
        assert_eq!(
            verifier.verify(&too_large).await,
            Err(VerifyError::TooLarge)
        );

        let after = scrape(&registry);
        assert!(
            after.contains("token_verifications_total{outcome=\"malformed\"} 2"),
            "{after}"
        );
        assert!(
            after.contains("token_verifications_total{outcome=\"too_large\"} 1"),
            "{after}"
        );
        assert!(
            after.contains("token_verifications_total{outcome=\"ok\"} 0"),
            "{after}"
        );
    }

    #[tokio::test]
    async fn a_failed_fetch_counts_as_a_fetch_and_a_failure() {
        let verifier = verifier();
        let registry = Registry::new();
        verifier.register_metrics(&registry).unwrap();
        assert!(
            verifier.refresh_now().await.is_err(),
            "nothing listens on port 9"
        );
        let text = scrape(&registry);
        assert!(text.contains("jwks_fetches_total 1"), "{text}");
        assert!(text.contains("jwks_fetch_failures_total 1"), "{text}");
        let state = verifier.state();
        assert_eq!((state.fetches, state.fetch_failures), (1, 1));
    }

    #[test]
    fn registering_twice_in_one_registry_is_refused_not_duplicated() {
        let verifier = verifier();
        let registry = Registry::new();
        verifier.register_metrics(&registry).unwrap();
        assert!(verifier.register_metrics(&registry).is_err());
    }

    #[test]
    fn the_registry_does_not_keep_the_verifier_alive() {
        let registry = Registry::new();
        let verifier = verifier();
        verifier.register_metrics(&registry).unwrap();
        let weak = Arc::downgrade(&verifier.inner);
        drop(verifier);
        assert!(weak.upgrade().is_none());
        assert!(scrape(&registry).contains("token_verifications_total"));
    }
}
