//! Exponential backoff with jitter, for everything that re-dials or retries.

use std::time::Duration;

/// Doubling waits from `min` to `max`, each spread by ±`jitter` so that many
/// clients that failed together do not retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    current: Duration,
}

impl Backoff {
    /// Starts at `min`; `jitter` is a fraction in [0, 1) (0.2 = ±20 %).
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Self {
        let max = max.max(min);
        Self {
            min,
            max,
            jitter: jitter.clamp(0.0, 0.99),
            current: min,
        }
    }

    /// The un-jittered wait the next failure gets.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// The wait after a failure (`random` in [0, 1), e.g. `fastrand::f64()`), less
    /// the time the failed attempt already took (at most half the wait: a hung
    /// attempt must not turn into an immediate retry). Doubles the next wait.
    pub fn next_wait(&mut self, attempt_took: Duration, random: f64) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let spread = 1.0 - self.jitter + 2.0 * self.jitter * random.clamp(0.0, 1.0);
        base.mul_f64(spread).saturating_sub(attempt_took.min(base / 2))
    }

    /// Back to the shortest wait, after an attempt that worked.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn doubles_from_min_to_max_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 0.0);
        let waits: Vec<u64> = (0..8)
            .map(|_| backoff.next_wait(Duration::ZERO, 0.5).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        backoff.reset();
        assert_eq!(backoff.current(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_and_time_spent_counts() {
        let wait =
            |random, took| Backoff::new(Duration::from_secs(10), Duration::from_secs(60), 0.2).next_wait(took, random);
        assert_eq!(wait(0.0, Duration::ZERO), Duration::from_secs(8));
        assert_eq!(wait(0.5, Duration::ZERO), Duration::from_secs(10));
        assert!(wait(0.999, Duration::ZERO) > Duration::from_millis(11_990));
        assert_eq!(wait(0.5, Duration::from_secs(3)), Duration::from_secs(7));
        assert_eq!(wait(0.5, Duration::from_secs(60)), Duration::from_secs(5));
    }
}
