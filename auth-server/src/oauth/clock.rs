//! The time every decision is made at. Production reads the system clock; a test moves its
//! server's clock forward instead of sleeping until a token expires.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix time in whole seconds, the system's, plus whatever a test has moved it on by. Cheap to
/// clone and to read (one atomic load beside the system clock).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Seconds added to the system time; only ever grows.
    ahead: Arc<AtomicU64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Current Unix time in seconds.
    pub fn now(&self) -> u64 {
        unix_now().saturating_add(self.ahead.load(Ordering::Relaxed))
    }

    /// Moves this clock, and every clone of it, `by` whole seconds ahead of the system's.
    pub fn advance(&self, by: Duration) {
        self.ahead.fetch_add(by.as_secs(), Ordering::Relaxed);
    }
}

/// The system's Unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// How long until the system clock reaches the Unix second `second`; zero once it has begun.
pub fn until(second: u64) -> Duration {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(second).saturating_sub(since_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_runs_ahead_in_every_clone() {
        let clock = Clock::system();
        let clone = clock.clone();
        let before = clone.now();
        clock.advance(Duration::from_secs(3600));
        assert!(clone.now() >= before + 3600);
        assert!(Clock::system().now() < before + 3600);
    }

    #[test]
    fn a_second_begun_is_no_wait_and_the_next_at_most_a_second_away() {
        let now = unix_now();
        assert_eq!(until(now), Duration::ZERO);
        assert!(until(now + 1) <= Duration::from_secs(1));
        assert!(until(now + 2) > Duration::from_secs(1));
    }
}
