//! The `prometheus` feature: a collector that a service registers in its own registry.
//!
//! It reads the verifier's atomics and state when scraped, building the families afresh each
//! time, so that the verifier keeps no Prometheus object to update per verification. It holds
//! the counters but reads the state through a function that holds no strong reference, so a
//! registry outliving the verifier does not keep it (and its background tasks) alive: the
//! counters stay exported, the gauges go.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts};

use super::super::error::Outcome;
use super::super::KeySetState;
use super::names::{
    Metric, CACHE_HITS, FETCHES, FETCH_FAILURES, KEYS, KEYS_AGE, KEYS_FRESH_FOR, POLLS,
    REVOCATION_AGE, REVOCATION_ENTRIES, VERIFICATIONS,
};
use super::Counters;
use super::POLL_RESULTS;

/// Reads the state of the verifier being exported; `None` once it has been dropped.
pub(in super::super) type StateSource = Box<dyn Fn() -> Option<KeySetState> + Send + Sync>;

/// Exports the verifier's counters, and its key set's and revocation list's size and age as
/// read at scrape time.
pub(in super::super) struct VerifierCollector {
    counters: Arc<Counters>,
    state: StateSource,
    descs: Vec<Desc>,
}

impl VerifierCollector {
    pub(in super::super) fn new(
        counters: Arc<Counters>,
        state: StateSource,
    ) -> prometheus::Result<Self> {
        let descs = Families::new()?
            .all()
            .iter()
            .flat_map(|metric| metric.desc())
            .cloned()
            .collect();
        Ok(Self {
            counters,
            state,
            descs,
        })
    }
}

impl Collector for VerifierCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // The names and labels are constants: building them cannot fail once `new` succeeded.
        let Ok(families) = Families::new() else {
            return Vec::new();
        };
        families.fill(&self.counters, (self.state)().as_ref())
    }
}

/// One scrape's metrics, every labelled series present from the start.
struct Families {
    verifications: IntCounterVec,
    cache_hits: IntCounter,
    fetches: IntCounter,
    fetch_failures: IntCounter,
    polls: IntCounterVec,
    keys: IntGauge,
    keys_age: Gauge,
    keys_fresh_for: Gauge,
    revocation_entries: IntGauge,
    revocation_age: Gauge,
}

fn opts(metric: &Metric) -> Opts {
    Opts::new(metric.name, metric.help)
}

impl Families {
    fn new() -> prometheus::Result<Self> {
        let verifications = IntCounterVec::new(opts(&VERIFICATIONS), &["outcome"])?;
        // Every outcome and every poll result is exported from the start, at 0, so that rates
        // need no absent() guard.
        for outcome in Outcome::all() {
            verifications.with_label_values(&[outcome.label()]);
        }
        let polls = IntCounterVec::new(opts(&POLLS), &["result"])?;
        for result in POLL_RESULTS {
            polls.with_label_values(&[result]);
        }
        Ok(Self {
            verifications,
            polls,
            cache_hits: IntCounter::with_opts(opts(&CACHE_HITS))?,
            fetches: IntCounter::with_opts(opts(&FETCHES))?,
            fetch_failures: IntCounter::with_opts(opts(&FETCH_FAILURES))?,
            keys: IntGauge::with_opts(opts(&KEYS))?,
            keys_age: Gauge::with_opts(opts(&KEYS_AGE))?,
            keys_fresh_for: Gauge::with_opts(opts(&KEYS_FRESH_FOR))?,
            revocation_entries: IntGauge::with_opts(opts(&REVOCATION_ENTRIES))?,
            revocation_age: Gauge::with_opts(opts(&REVOCATION_AGE))?,
        })
    }

    fn counters(&self) -> [&dyn Collector; 5] {
        [
            &self.verifications,
            &self.cache_hits,
            &self.fetches,
            &self.fetch_failures,
            &self.polls,
        ]
    }

    fn gauges(&self) -> [&dyn Collector; 5] {
        [
            &self.keys,
            &self.keys_age,
            &self.keys_fresh_for,
            &self.revocation_entries,
            &self.revocation_age,
        ]
    }

    fn all(&self) -> Vec<&dyn Collector> {
        self.counters().into_iter().chain(self.gauges()).collect()
    }

    /// The families with the values counted, and the gauges when the verifier still lives.
    fn fill(self, counters: &Counters, state: Option<&KeySetState>) -> Vec<MetricFamily> {
        for (index, outcome) in Outcome::all().enumerate() {
            self.verifications
                .with_label_values(&[outcome.label()])
                .inc_by(counters.outcome(index));
        }
        for (index, result) in POLL_RESULTS.iter().enumerate() {
            self.polls
                .with_label_values(&[result])
                .inc_by(counters.polls(index));
        }
        self.cache_hits.inc_by(counters.cache_hits());
        self.fetches.inc_by(counters.fetches());
        self.fetch_failures.inc_by(counters.fetch_failures());
        let mut families: Vec<_> = self
            .counters()
            .iter()
            .flat_map(|metric| metric.collect())
            .collect();
        if let Some(state) = state {
            self.keys
                .set(i64::try_from(state.n_keys).unwrap_or(i64::MAX));
            self.keys_age
                .set(state.age.map_or(-1.0, |age| age.as_secs_f64()));
            self.keys_fresh_for.set(state.fresh_for.as_secs_f64());
            self.revocation_entries
                .set(i64::try_from(state.revocation_entries).unwrap_or(i64::MAX));
            self.revocation_age
                .set(state.revocation_age.map_or(-1.0, |age| age.as_secs_f64()));
            families.extend(self.gauges().iter().flat_map(|metric| metric.collect()));
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

    use super::super::super::{Verifier, VerifierConfig, VerifyError};

    fn verifier() -> Verifier {
        let config = VerifierConfig::new(Url::parse("http://127.0.0.1:9").unwrap(), "api");
        Verifier::new(config).unwrap()
    }

    fn scrape(registry: &Registry) -> String {
        super::render_text(registry)
    }

    #[tokio::test]
    async fn verifications_are_counted_by_outcome_and_keys_read_at_scrape_time() {
        let verifier = verifier();
        let registry = Registry::new();
        verifier.register_metrics(&registry).unwrap();
        let before = scrape(&registry);
        for line in [
            "oauth2_jwt_verifier_verifications_total{outcome=\"ok\"} 0",
            "oauth2_jwt_verifier_verifications_total{outcome=\"revoked\"} 0",
            "oauth2_jwt_verifier_revocation_polls_total{result=\"delta\"} 0",
            "oauth2_jwt_verifier_token_cache_hits_total 0",
            "oauth2_jwt_verifier_jwks_keys 0",
            "oauth2_jwt_verifier_jwks_age_seconds -1",
            "oauth2_jwt_verifier_jwks_fetches_total 0",
            "oauth2_jwt_verifier_jwks_fetch_failures_total 0",
            "oauth2_jwt_verifier_revocation_entries 0",
            "oauth2_jwt_verifier_revocation_feed_age_seconds -1",
        ] {
            assert!(before.contains(line), "{line} in {before}");
        }
        // Nothing is exported under a name the embedding service could be using itself.
        for line in before.lines().filter(|line| !line.starts_with('#')) {
            assert!(line.starts_with("oauth2_jwt_verifier_"), "{line}");
        }

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
        for line in [
            "oauth2_jwt_verifier_verifications_total{outcome=\"malformed\"} 2",
            "oauth2_jwt_verifier_verifications_total{outcome=\"too_large\"} 1",
            "oauth2_jwt_verifier_verifications_total{outcome=\"ok\"} 0",
        ] {
            assert!(after.contains(line), "{line} in {after}");
        }
        assert_eq!(
            (verifier.state().verified, verifier.state().refused),
            (0, 3)
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
        assert!(
            text.contains("oauth2_jwt_verifier_jwks_fetches_total 1"),
            "{text}"
        );
        assert!(
            text.contains("oauth2_jwt_verifier_jwks_fetch_failures_total 1"),
            "{text}"
        );
        let state = verifier.state();
        assert_eq!((state.fetches, state.fetch_failures), (1, 1));
    }

    #[test]
    fn registering_twice_in_one_registry_is_refused_not_duplicated() {
        let registry = Registry::new();
        let verifier = verifier();
        verifier.register_metrics(&registry).unwrap();
        assert!(verifier.register_metrics(&registry).is_err());
        // A second verifier would export the same names: refused as well.
        assert!(self::verifier().register_metrics(&registry).is_err());
        let text = scrape(&registry);
        assert_eq!(
            text.lines()
                .filter(|line| line.starts_with("oauth2_jwt_verifier_jwks_keys "))
                .count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn the_registry_does_not_keep_the_verifier_alive() {
        let registry = Registry::new();
        let verifier = verifier();
        verifier.register_metrics(&registry).unwrap();
        let weak = Arc::downgrade(&verifier.inner);
        drop(verifier);
        assert!(weak.upgrade().is_none());
        let text = scrape(&registry);
        assert!(
            text.contains("oauth2_jwt_verifier_verifications_total"),
            "{text}"
        );
        assert!(!text.contains("oauth2_jwt_verifier_jwks_keys"), "{text}");
    }
}
