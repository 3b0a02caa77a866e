//! The lifecycle's timings and what follows from them: when a next key is due, how long the
//! JWKS may be cached, how long a retired key stays published.
//!
//! # Why the JWKS max-age is `min(300, P − 2·S)`
//!
//! Let a next key be written to the store at `t0`, with `activates_at = t0 + P`
//! (`AUTH_KEY_PUBLISH_AHEAD`). Every replica reads the store at least once per S, and a read
//! that takes as long as a whole S would be a failing replica, so by `t0 + 2·S` every replica
//! publishes the key. A verifier that honours `max-age` (A) holds a key set fetched before that
//! for at most A more, so every verifier knows the key by `t0 + 2·S + A`. The store refuses to
//! promote the key before `t0 + P`, so no token carries its kid before then; hence
//! `2·S + A ≤ P`, and A is at most 300 s so that revocations and new keys spread within minutes.
//! Settings are checked at start so that `P ≥ 3·S`, which makes `A ≥ S ≥ 1`. A verifier whose
//! own floor holds keys longer than A still gets new keys through its unknown-kid refresh.
//!
//! A retired key stays published for `access_ttl + S + leeway` after it stopped signing: a
//! replica that has not synced yet may sign with it for up to S more, its tokens live
//! `access_ttl`, and the leeway covers the verifiers' allowance for clock skew (30 s in the
//! verifier library) and the replicas' clock differences.

/// The longest the JWKS may be cached, whatever the schedule allows.
pub const MAX_JWKS_MAX_AGE: u64 = 300;

/// The timings of the lifecycle, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub access_ttl: u64,
    /// 0: no scheduled rotation.
    pub rotation_interval: u64,
    pub publish_ahead: u64,
    pub sync_interval: u64,
    pub removal_leeway: u64,
}

impl Schedule {
    /// The JWKS `Cache-Control: max-age`: `min(300, P − 2·S)`, at least 1 (see the module doc).
    pub fn jwks_max_age(&self) -> u64 {
        self.publish_ahead
            .saturating_sub(self.sync_interval.saturating_mul(2))
            .clamp(1, MAX_JWKS_MAX_AGE)
    }

    /// How long a key stays published after it stopped signing.
    pub fn removal_delay(&self) -> u64 {
        self.access_ttl
            .saturating_add(self.sync_interval)
            .saturating_add(self.removal_leeway)
    }

    /// When the schedule wants a next key, given that the active key has signed since
    /// `active_since`: `Some(activates_at)` once staging is due.
    pub fn staging_due(&self, active_since: u64, now: u64) -> Option<u64> {
        if self.rotation_interval == 0 {
            return None;
        }
        let due = active_since.saturating_add(self.rotation_interval);
        let earliest = now.saturating_add(self.publish_ahead);
        (earliest >= due).then_some(due.max(earliest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule {
            access_ttl: 900,
            rotation_interval: 30 * 24 * 3600,
            publish_ahead: 3600,
            sync_interval: 10,
            removal_leeway: 60,
        }
    }

    #[test]
    fn max_age_leaves_a_new_key_published_for_a_cache_lifetime_and_two_syncs() {
        assert_eq!(schedule().jwks_max_age(), 300, "capped at 300");
        for (publish_ahead, sync_interval) in [(3, 1), (30, 10), (400, 60), (3600, 10), (301, 1)] {
            let timing = Schedule {
                publish_ahead,
                sync_interval,
                ..schedule()
            };
            let max_age = timing.jwks_max_age();
            assert!((1..=MAX_JWKS_MAX_AGE).contains(&max_age));
            assert!(
                2 * sync_interval + max_age <= publish_ahead,
                "P={publish_ahead} S={sync_interval}: A={max_age}"
            );
        }
        let short = Schedule {
            publish_ahead: 3,
            sync_interval: 1,
            ..schedule()
        };
        assert_eq!(short.jwks_max_age(), 1);
    }

    #[test]
    fn staging_is_due_publish_ahead_before_the_interval_ends() {
        let timing = Schedule {
            rotation_interval: 100,
            publish_ahead: 30,
            ..schedule()
        };
        assert_eq!(timing.staging_due(1000, 1069), None);
        assert_eq!(timing.staging_due(1000, 1070), Some(1100));
        assert_eq!(
            timing.staging_due(1000, 1200),
            Some(1230),
            "late: still published ahead"
        );
        let off = Schedule {
            rotation_interval: 0,
            ..timing
        };
        assert_eq!(off.staging_due(0, u64::MAX / 2), None);
    }
}
