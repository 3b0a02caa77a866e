//! The `metrics` feature: the verifier's counts and gauges through the `metrics` facade, to
//! whatever recorder the embedding service installed.
//!
//! Each series gets its handle once, when the verifier is built, so that a verification costs
//! the recorder's increment (an atomic add in the usual exporters) and no key lookup; that is
//! also when every metric is described and every labelled series registered. A recorder
//! installed after the verifier was built therefore sees nothing from it.
//!
//! The facade has no scrape-time callback, so the gauges are pushed: the key count, freshness
//! and ages when a key set is installed, after every poll of the revocation feed, and every
//! [`GAUGE_TICK`] from the loop that [`super::super::Verifier::start`] spawns (the ages grow
//! between changes). A verifier built with `new` or `with_keys` has no such loop: its gauges
//! move only at its fetches and polls.
//!
//! The facade has one namespace per recorder: two verifiers in one process add their counts
//! into the same series and take turns setting the gauges. A service that runs two builds the
//! second under another recorder (`metrics::with_local_recorder`), since handles are taken
//! from the recorder in force when a verifier is built.

use std::sync::Weak;
use std::time::Duration;

use metrics::{Counter, Gauge, Unit};

use super::super::error::Outcome;
use super::super::{Inner, KeySetState};
use super::names::{
    Metric, CACHE_HITS, FETCHES, FETCH_FAILURES, KEYS, KEYS_AGE, KEYS_FRESH_FOR, POLLS,
    REVOCATION_AGE, REVOCATION_ENTRIES, VERIFICATIONS,
};
use super::POLL_RESULTS;

/// How often the background loop sets the gauges, so that an age read between two changes is
/// late by at most this much.
pub(in super::super) const GAUGE_TICK: Duration = Duration::from_secs(5);

/// One handle per series, taken from the recorder installed when the verifier was built.
pub(super) struct Handles {
    by_outcome: [Counter; Outcome::COUNT],
    pub(super) cache_hits: Counter,
    fetches: Counter,
    fetch_failures: Counter,
    by_poll: [Counter; POLL_RESULTS.len()],
    keys: Gauge,
    keys_age: Gauge,
    keys_fresh_for: Gauge,
    revocation_entries: Gauge,
    revocation_age: Gauge,
}

fn counter(metric: &Metric) -> Counter {
    metrics::describe_counter!(metric.name, Unit::Count, metric.help);
    metrics::counter!(metric.name)
}

fn gauge(metric: &Metric, unit: Unit) -> Gauge {
    metrics::describe_gauge!(metric.name, unit, metric.help);
    metrics::gauge!(metric.name)
}

impl Default for Handles {
    fn default() -> Self {
        metrics::describe_counter!(VERIFICATIONS.name, Unit::Count, VERIFICATIONS.help);
        let mut outcomes = Outcome::all();
        let by_outcome = std::array::from_fn(|_| {
            let label = outcomes.next().map_or("", |outcome| outcome.label());
            metrics::counter!(VERIFICATIONS.name, "outcome" => label)
        });
        metrics::describe_counter!(POLLS.name, Unit::Count, POLLS.help);
        let by_poll = POLL_RESULTS.map(|result| metrics::counter!(POLLS.name, "result" => result));
        Self {
            by_outcome,
            by_poll,
            cache_hits: counter(&CACHE_HITS),
            fetches: counter(&FETCHES),
            fetch_failures: counter(&FETCH_FAILURES),
            keys: gauge(&KEYS, Unit::Count),
            keys_age: gauge(&KEYS_AGE, Unit::Seconds),
            keys_fresh_for: gauge(&KEYS_FRESH_FOR, Unit::Seconds),
            revocation_entries: gauge(&REVOCATION_ENTRIES, Unit::Count),
            revocation_age: gauge(&REVOCATION_AGE, Unit::Seconds),
        }
    }
}

impl Handles {
    pub(super) fn count(&self, outcome: usize) {
        if let Some(counter) = self.by_outcome.get(outcome) {
            counter.increment(1);
        }
    }

    pub(super) fn count_fetch(&self, failed: bool) {
        self.fetches.increment(1);
        if failed {
            self.fetch_failures.increment(1);
        }
    }

    pub(super) fn count_poll(&self, result: usize) {
        if let Some(counter) = self.by_poll.get(result) {
            counter.increment(1);
        }
    }

    /// Sets every gauge from `state`; an age not known yet is -1.
    pub(super) fn publish(&self, state: &KeySetState) {
        // Counts far below 2^53: exact as f64.
        #[allow(clippy::cast_precision_loss)]
        {
            self.keys.set(state.n_keys as f64);
            self.revocation_entries.set(state.revocation_entries as f64);
        }
        self.keys_age
            .set(state.age.map_or(-1.0, |age| age.as_secs_f64()));
        self.keys_fresh_for.set(state.fresh_for.as_secs_f64());
        self.revocation_age
            .set(state.revocation_age.map_or(-1.0, |age| age.as_secs_f64()));
    }
}

/// Sets the gauges every [`GAUGE_TICK`] until the verifier is dropped.
pub(in super::super) async fn gauge_loop(inner: Weak<Inner>) {
    loop {
        match inner.upgrade() {
            Some(inner) => inner.publish_gauges(),
            None => return,
        }
        tokio::time::sleep(GAUGE_TICK).await;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
    use metrics_util::MetricKind;
    use test_kit::TestSigner;

    use super::super::super::error::Outcome;
    use super::super::super::FeedPoll;
    use super::super::super::{unix_now, KeySet, Verifier, VerifierConfig, VerifyError};

    /// What a snapshot holds: the value of each series by its name and labels
    /// (`name{key=value}`), and each metric's description. Taking one resets the recorder's
    /// values to 0.
    struct Seen {
        values: HashMap<String, DebugValue>,
        described: HashMap<String, String>,
    }

    fn snapshot(snapshotter: &Snapshotter) -> Seen {
        let mut seen = Seen {
            values: HashMap::new(),
            described: HashMap::new(),
        };
        for (key, _unit, description, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            let series = if labels.is_empty() {
                key.name().to_owned()
            } else {
                format!("{}{{{}}}", key.name(), labels.join(","))
            };
            assert!(
                matches!(kind, MetricKind::Counter | MetricKind::Gauge),
                "{series}"
            );
            if let Some(description) = description {
                seen.described
                    .insert(key.name().to_owned(), description.into_owned());
            }
            seen.values.insert(series, value);
        }
        seen
    }

    fn count(seen: &Seen, series: &str) -> u64 {
        match seen.values.get(series) {
            Some(DebugValue::Counter(value)) => *value,
            other => panic!("{series}: {other:?} in {:?}", seen.values.keys()),
        }
    }

    fn gauge(seen: &Seen, series: &str) -> f64 {
        match seen.values.get(series) {
            Some(DebugValue::Gauge(value)) => value.into_inner(),
            other => panic!("{series}: {other:?} in {:?}", seen.values.keys()),
        }
    }

    fn config() -> VerifierConfig {
        let mut config = VerifierConfig::new("http://127.0.0.1:9".parse().unwrap(), "api");
        // The issuer is a closed port: unknown kids are refused offline.
        config.unknown_kid_cooldown = Duration::from_secs(3600);
        config
    }

    fn token(signer: &TestSigner, kid: &str) -> String {
        let exp = unix_now() + 900;
        let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": kid});
        let claims = serde_json::json!({
            "iss": "http://127.0.0.1:9", "sub": "alice", "aud": "api", "exp": exp,
            "iat": exp - 900, "jti": "j", "client_id": "public", "scope": "read",
        });
        signer.sign(&header, &claims)
    }

    #[tokio::test]
    async fn every_series_is_registered_at_construction_and_counted_by_outcome() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let signer = TestSigner::generate();
        let keys = KeySet::from_jwks(signer.jwks("k1").as_bytes(), Duration::from_secs(60));
        let verifier = metrics::with_local_recorder(&recorder, || {
            Verifier::with_keys(config(), keys.unwrap()).unwrap()
        });

        let start = snapshot(&snapshotter);
        for outcome in Outcome::all() {
            let series = format!(
                "oauth2_jwt_verifier_verifications_total{{outcome={}}}",
                outcome.label()
            );
            assert_eq!(count(&start, &series), 0);
        }
        for result in super::POLL_RESULTS {
            let series = format!("oauth2_jwt_verifier_revocation_polls_total{{result={result}}}");
            assert_eq!(count(&start, &series), 0);
        }
        for name in start.values.keys() {
            assert!(name.starts_with("oauth2_jwt_verifier_"), "{name}");
        }
        assert_eq!(start.described.len(), 10, "{:?}", start.described);
        // The keys given were installed when the verifier was built: the gauges say so.
        assert_eq!(gauge(&start, "oauth2_jwt_verifier_jwks_keys"), 1.0);
        assert_eq!(
            gauge(&start, "oauth2_jwt_verifier_jwks_fresh_for_seconds"),
            60.0
        );
        assert!(gauge(&start, "oauth2_jwt_verifier_jwks_age_seconds") >= 0.0);
        assert_eq!(
            gauge(&start, "oauth2_jwt_verifier_revocation_feed_age_seconds"),
            -1.0
        );

        // Counted through handles taken at construction, now that the local recorder is gone.
        let good = token(&signer, "k1");
        verifier.verify(&good).await.unwrap();
        verifier.verify(&good).await.unwrap();
        assert_eq!(
            verifier.verify(&token(&signer, "k2")).await,
            Err(VerifyError::UnknownKid)
        );
        assert_eq!(
            verifier.verify("not a token").await,
            Err(VerifyError::Malformed)
        );

        let after = snapshot(&snapshotter);
        for (series, expected) in [
            ("oauth2_jwt_verifier_verifications_total{outcome=ok}", 2),
            (
                "oauth2_jwt_verifier_verifications_total{outcome=unknown_kid}",
                1,
            ),
            (
                "oauth2_jwt_verifier_verifications_total{outcome=malformed}",
                1,
            ),
            (
                "oauth2_jwt_verifier_verifications_total{outcome=expired}",
                0,
            ),
            ("oauth2_jwt_verifier_token_cache_hits_total", 1),
        ] {
            assert_eq!(count(&after, series), expected, "{series}");
        }
        let state = verifier.state();
        assert_eq!((state.verified, state.refused, state.cache_hits), (2, 2, 1));
    }

    #[tokio::test]
    async fn fetches_and_polls_are_counted_and_their_gauges_set_where_they_change() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let off = metrics::with_local_recorder(&recorder, || {
            let mut config = config();
            config.revocation_poll = Duration::ZERO;
            Verifier::new(config).unwrap()
        });
        let start = snapshot(&snapshotter);
        assert_eq!(gauge(&start, "oauth2_jwt_verifier_jwks_keys"), 0.0);
        assert_eq!(gauge(&start, "oauth2_jwt_verifier_jwks_age_seconds"), -1.0);

        assert!(
            off.refresh_now().await.is_err(),
            "nothing listens on port 9"
        );
        assert_eq!(off.poll_revocations_now().await.unwrap(), FeedPoll::Off);
        let after = snapshot(&snapshotter);
        assert_eq!(count(&after, "oauth2_jwt_verifier_jwks_fetches_total"), 1);
        assert_eq!(
            count(&after, "oauth2_jwt_verifier_jwks_fetch_failures_total"),
            1
        );
        assert_eq!(
            count(
                &after,
                "oauth2_jwt_verifier_revocation_polls_total{result=off}"
            ),
            1
        );
        // Set again by the poll (a snapshot resets the recorder's gauges to 0).
        assert_eq!(gauge(&after, "oauth2_jwt_verifier_jwks_age_seconds"), -1.0);
        assert_eq!(gauge(&after, "oauth2_jwt_verifier_revocation_entries"), 0.0);

        let polling = metrics::with_local_recorder(&recorder, || Verifier::new(config()).unwrap());
        assert!(polling.poll_revocations_now().await.is_err());
        let failed = snapshot(&snapshotter);
        assert_eq!(
            count(
                &failed,
                "oauth2_jwt_verifier_revocation_polls_total{result=failed}"
            ),
            1
        );
        let state = polling.state();
        assert_eq!(
            (state.revocation_polls, state.revocation_poll_failures),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn a_started_verifier_sets_its_gauges_on_a_tick_between_changes() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let started = metrics::with_local_recorder(&recorder, || {
            let mut config = config();
            // No feed, and a key fetch that fails (port 9): neither sets the gauges again.
            config.revocation_poll = Duration::ZERO;
            Verifier::start(config).unwrap()
        });
        let age = "oauth2_jwt_verifier_jwks_age_seconds";
        assert_eq!(gauge(&snapshot(&snapshotter), age), -1.0, "set when built");
        // Each snapshot puts the gauges back to 0; only the loop sets them to -1 again: once
        // when it starts, then on each tick.
        for round in ["start", "tick"] {
            let deadline = std::time::Instant::now() + super::GAUGE_TICK * 4;
            while gauge(&snapshot(&snapshotter), age) != -1.0 {
                assert!(std::time::Instant::now() < deadline, "no {round}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        assert!(started.state().fetches >= 1);
    }
}
