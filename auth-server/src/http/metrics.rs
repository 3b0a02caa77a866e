//! Prometheus metrics of the auth-server, beside the request metrics of `server_plumbing::telemetry`.
//! They are registered in the server's own registry, which prefixes every name with `auth_server_`.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::oauth::TokenError;
use crate::store::GrantType;

#[derive(Clone)]
pub struct Metrics {
    pub tokens_issued: IntCounterVec,
    pub token_errors: IntCounterVec,
    pub login_failures: IntCounter,
    pub throttled: IntCounter,
    pub store_errors: IntCounter,
    pub password_queue_depth: IntGauge,
    pub password_wait_seconds: Histogram,
    /// Published and revoked keys by lifecycle state, as this replica last read them.
    pub signing_keys: IntGaugeVec,
    /// Times this replica started signing with another key.
    pub signing_key_rotations: IntCounter,
    /// Reads of the key states that failed; the replica keeps its keys meanwhile.
    pub signing_key_sync_failures: IntCounter,
    /// 1 while the key states have not been read for three sync intervals (`/readyz` is 503).
    pub signing_keys_stale: IntGauge,
}

impl Metrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let all = Self {
            tokens_issued: IntCounterVec::new(
                Opts::new("tokens_issued_total", "Access tokens issued by grant type"),
                &["grant_type"],
            )?,
            token_errors: IntCounterVec::new(
                Opts::new(
                    "token_errors_total",
                    "Token endpoint errors by grant type and error code",
                ),
                &["grant_type", "error"],
            )?,
            login_failures: IntCounter::new(
                "login_failures_total",
                "Password grants refused for a wrong username or password",
            )?,
            throttled: IntCounter::new(
                "throttled_requests_total",
                "Token requests refused by the brute-force throttle",
            )?,
            store_errors: IntCounter::new(
                "store_errors_total",
                "Requests that failed because the store was unavailable",
            )?,
            password_queue_depth: IntGauge::new(
                "password_hash_queue_depth",
                "Password hash jobs waiting or running",
            )?,
            password_wait_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "password_hash_wait_seconds",
                    "Time a password hash job waited for a worker",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )?,
            signing_keys: IntGaugeVec::new(
                Opts::new(
                    "signing_keys",
                    "Signing keys this replica knows, by state (next, active, retired)",
                ),
                &["state"],
            )?,
            signing_key_rotations: IntCounter::new(
                "signing_key_rotations_total",
                "Times this replica started signing with another key",
            )?,
            signing_key_sync_failures: IntCounter::new(
                "signing_key_sync_failures_total",
                "Failed reads or steps of the signing-key lifecycle; the keys held stay in use",
            )?,
            signing_keys_stale: IntGauge::new(
                "signing_keys_stale",
                "1 while this replica has not read the key states for three sync intervals: \
                 it may hold a revoked key, so /readyz answers 503",
            )?,
        };
        registry.register(Box::new(all.tokens_issued.clone()))?;
        registry.register(Box::new(all.token_errors.clone()))?;
        registry.register(Box::new(all.login_failures.clone()))?;
        registry.register(Box::new(all.throttled.clone()))?;
        registry.register(Box::new(all.store_errors.clone()))?;
        registry.register(Box::new(all.password_queue_depth.clone()))?;
        registry.register(Box::new(all.password_wait_seconds.clone()))?;
        registry.register(Box::new(all.signing_keys.clone()))?;
        registry.register(Box::new(all.signing_key_rotations.clone()))?;
        registry.register(Box::new(all.signing_key_sync_failures.clone()))?;
        registry.register(Box::new(all.signing_keys_stale.clone()))?;
        Ok(all)
    }
}

impl Metrics {
    /// Sets the `signing_keys` gauges from the ring in use.
    pub fn observe_keys(&self, ring: &crate::keys::KeyRing) {
        use crate::store::KeyState;
        for state in [KeyState::Next, KeyState::Active, KeyState::Retired] {
            self.signing_keys
                .with_label_values(&[state.as_str()])
                .set(i64::try_from(ring.count(state)).unwrap_or(i64::MAX));
        }
    }
}

/// The password pool's reports land in the gauges and histogram above.
impl crate::passwords::PoolMetrics for Metrics {
    fn queue_depth_changed(&self, delta: i64) {
        self.password_queue_depth.add(delta);
    }

    fn waited(&self, seconds: f64) {
        self.password_wait_seconds.observe(seconds);
    }
}

/// The core's token answers land in the counters above.
impl crate::oauth::Recorder for Metrics {
    fn issued(&self, grant: GrantType) {
        self.tokens_issued
            .with_label_values(&[grant.as_str()])
            .inc();
    }

    fn refused(&self, grant: Option<GrantType>, error: &TokenError) {
        let label = grant.map_or("other", GrantType::as_str);
        self.token_errors
            .with_label_values(&[label, &error.to_string()])
            .inc();
        match error {
            TokenError::InvalidGrant(_) if grant == Some(GrantType::Password) => {
                self.login_failures.inc()
            }
            TokenError::TemporarilyUnavailable { .. } => self.store_errors.inc(),
            TokenError::Throttled { .. } => self.throttled.inc(),
            _ => {}
        }
    }
}
