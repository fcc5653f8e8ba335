//! `ServerStatus.flows_rate` from a running count, so the RPC reads 64 counters
//! instead of walking up to a million ring entries on a runtime worker.
//!
//! Hubble counts the ring's flows whose timestamp falls within the last minute and
//! divides by 60 s, or by the time since the oldest flow when the ring holds less.
//! Here the writer counts flows per second of their timestamp, whether or not
//! they are still in the ring, and the rate is the last minute's count over 60 s,
//! or over the time since the first flow when that is more recent. For a ring
//! that holds less than a minute both measure the same throughput.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use sightline_proto::Timestamp;

/// Seconds of counts kept: the minute plus a few seconds of clock skew ahead.
const BUCKETS: usize = 64;
const WINDOW_SECONDS: i64 = 60;
/// Flows stamped up to this many seconds after the reader's clock still count.
const AHEAD_SECONDS: i64 = 3;
const NO_FLOW: i64 = i64::MIN;

/// Per-second counts, readable at any time. Each bucket packs the (wrapped) second
/// in its high half and that second's count in its low half, so a reader never
/// pairs one second with another's count.
#[derive(Debug)]
pub struct FlowRate {
    buckets: [AtomicU64; BUCKETS],
    first_second: AtomicI64,
}

impl Default for FlowRate {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            first_second: AtomicI64::new(NO_FLOW),
        }
    }
}

fn pack(second: i64, count: u64) -> u64 {
    (u64::from(second as u32) << 32) | count.min(u64::from(u32::MAX))
}

fn unpack(bucket: u64) -> (u32, u64) {
    ((bucket >> 32) as u32, bucket & u64::from(u32::MAX))
}

fn index(second: i64) -> usize {
    second.rem_euclid(BUCKETS as i64) as usize
}

/// The writer's side: only the ring's single writer counts, so plain loads and
/// stores suffice (no read-modify-write on the hot path).
#[derive(Debug)]
pub(crate) struct FlowCounter {
    /// The newest second counted, never more than [`AHEAD_SECONDS`] past the clock:
    /// flows a whole window older are late arrivals and left out.
    newest_second: i64,
    /// The wall clock's second as last read: on `tick`, and when a flow claims a
    /// later time than it allows.
    clock_second: i64,
}

impl Default for FlowCounter {
    fn default() -> Self {
        Self {
            newest_second: NO_FLOW,
            clock_second: NO_FLOW,
        }
    }
}

impl FlowCounter {
    pub(crate) fn count(&mut self, time: Timestamp, rate: &FlowRate) {
        let second = time.seconds;
        if second > self.clock_second.saturating_add(AHEAD_SECONDS) {
            // Rare (once per second at most, in order): read the clock again before
            // letting a flow from the future move the window.
            self.clock_second = Timestamp::now().seconds;
        }
        if self.newest_second == NO_FLOW {
            rate.first_second.store(second, Relaxed);
        } else if second <= self.newest_second.saturating_sub(WINDOW_SECONDS) {
            // Outside any window that includes the newest flow; counting it would
            // reset a bucket that holds a recent second.
            return;
        }
        let ceiling = self.clock_second.saturating_add(AHEAD_SECONDS);
        self.newest_second = self.newest_second.max(second.min(ceiling));
        let bucket = &rate.buckets[index(second)];
        let (held, count) = unpack(bucket.load(Relaxed));
        let count = if held == second as u32 { count + 1 } else { 1 };
        bucket.store(pack(second, count), Relaxed);
    }

    /// Called about once a second with the wall clock. After the clock steps back
    /// (NTP, a resumed VM), the window follows it again instead of waiting for the
    /// clock to catch up with what was counted before.
    pub(crate) fn tick(&mut self, now: Timestamp) {
        self.clock_second = now.seconds;
        if self.newest_second != NO_FLOW && self.newest_second > now.seconds.saturating_add(AHEAD_SECONDS) {
            self.newest_second = now.seconds;
        }
    }
}

impl FlowRate {
    /// Flows per second over the minute before `now`.
    pub fn per_second(&self, now: Timestamp) -> f64 {
        let now_second = now.seconds;
        let flows: u64 = self
            .buckets
            .iter()
            .map(|bucket| unpack(bucket.load(Relaxed)))
            .filter(|&(second, _)| {
                let age = i64::from((now_second as u32).wrapping_sub(second) as i32);
                (-AHEAD_SECONDS..WINDOW_SECONDS).contains(&age)
            })
            .map(|(_, count)| count)
            .sum();
        if flows == 0 {
            return 0.0;
        }
        let window = WINDOW_SECONDS as f64;
        let first = self.first_second.load(Relaxed);
        let since_first = (now.as_unix_nanos() - i128::from(first) * 1_000_000_000) as f64 / 1e9;
        // A young agent has seen flows for less than the window; at least a second,
        // so a first burst does not read as an enormous rate. A first flow after
        // `now` means the clock stepped back since: not a young agent.
        let span = if since_first < 0.0 {
            window
        } else {
            since_first.clamp(1.0, window)
        };
        flows as f64 / span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    #[test]
    fn the_rate_counts_the_last_minute() {
        let (rate, mut counter) = (FlowRate::default(), FlowCounter::default());
        let now = 1_000_000;
        for _ in 0..5 {
            counter.count(at(now - 100), &rate);
        }
        for i in 0..120 {
            counter.count(at(now - 59 + i % 60), &rate);
        }
        // Old flows that arrive late must not clear a recent second's count.
        counter.count(at(now - 59 - 64), &rate);
        assert_eq!(rate.per_second(at(now)), 2.0);
        // A minute later, none of them count.
        assert_eq!(rate.per_second(at(now + 60)), 0.0);
    }

    #[test]
    fn a_young_agent_divides_by_the_time_since_its_first_flow() {
        let (rate, mut counter) = (FlowRate::default(), FlowCounter::default());
        let now = 1_000_000;
        for _ in 0..20 {
            counter.count(at(now - 10), &rate);
        }
        assert_eq!(rate.per_second(at(now)), 2.0);
        // Ten flows in the current second: a rate over one second, not over nanoseconds.
        let (rate, mut counter) = (FlowRate::default(), FlowCounter::default());
        for _ in 0..10 {
            counter.count(at(now), &rate);
        }
        assert_eq!(
            rate.per_second(Timestamp {
                seconds: now,
                nanos: 1000
            }),
            10.0
        );
        assert_eq!(FlowRate::default().per_second(at(now)), 0.0);
    }

    #[test]
    fn a_flow_from_the_future_or_a_clock_stepped_back_does_not_stop_the_count() {
        let (rate, mut counter) = (FlowRate::default(), FlowCounter::default());
        let now = Timestamp::now().seconds;
        counter.count(at(now - 100), &rate);
        // One flow stamped an hour ahead (a wrong clock on the node that sent it).
        counter.count(at(now + 3_600), &rate);
        for _ in 0..60 {
            counter.count(at(now), &rate);
        }
        assert_eq!(rate.per_second(at(now)), 1.0, "60 flows in the last minute");

        // The clock steps back an hour: flows stamped by it count again at once.
        let (rate, mut counter) = (FlowRate::default(), FlowCounter::default());
        counter.count(at(now), &rate);
        let stepped_back = now - 3_600;
        counter.tick(at(stepped_back));
        for _ in 0..120 {
            counter.count(at(stepped_back), &rate);
        }
        assert_eq!(rate.per_second(at(stepped_back)), 2.0);
    }
}
