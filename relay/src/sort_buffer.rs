//! Orders responses from many peers by time within a bounded window.
//!
//! Peers' streams interleave arbitrarily; holding up to `capacity` responses in a
//! min-heap and releasing the oldest when full, or any that waited longer than the
//! drain timeout, yields a stream sorted by time whenever the peers' skew stays
//! below that window. Equal times keep arrival order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

/// Anything merged by time: nanoseconds since the Unix epoch.
pub trait Timed {
    fn time_nanos(&self) -> i128;
}

struct Entry<T> {
    time: i128,
    seq: u64,
    arrived: Instant,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// Why an item left the buffer, for the relay's eviction metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// The buffer was full.
    Full,
    /// It waited the whole drain timeout.
    Timeout,
    /// The inputs ended.
    Flush,
}

pub struct SortBuffer<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    capacity: usize,
    drain_timeout: Duration,
    seq: u64,
}

impl<T: Timed> SortBuffer<T> {
    pub fn new(capacity: usize, drain_timeout: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            heap: BinaryHeap::with_capacity(capacity + 1),
            capacity,
            drain_timeout,
            seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Adds `item`; returns the oldest item when that made the buffer overflow.
    pub fn push(&mut self, item: T, now: Instant) -> Option<T> {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            time: item.time_nanos(),
            seq: self.seq,
            arrived: now,
            item,
        }));
        (self.heap.len() > self.capacity).then(|| self.pop()).flatten()
    }

    fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|Reverse(entry)| entry.item)
    }

    /// Releases, oldest first, everything up to and including the newest item that
    /// has waited at least the drain timeout: anything older than it cannot be
    /// overtaken by a later arrival within the window either.
    pub fn drain_expired(&mut self, now: Instant) -> Vec<T> {
        let Some(cutoff) = self
            .heap
            .iter()
            .filter(|Reverse(e)| now.duration_since(e.arrived) >= self.drain_timeout)
            .map(|Reverse(e)| (e.time, e.seq))
            .max()
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(Reverse(head)) = self.heap.peek() {
            if (head.time, head.seq) > cutoff {
                break;
            }
            out.extend(self.pop());
        }
        out
    }

    /// When the next item expires, if any is waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.heap.iter().map(|Reverse(e)| e.arrived + self.drain_timeout).min()
    }

    pub fn drain_all(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.heap.len());
        while let Some(item) = self.pop() {
            out.push(item);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Item(i128, &'static str);
    impl Timed for Item {
        fn time_nanos(&self) -> i128 {
            self.0
        }
    }

    #[test]
    fn full_buffer_releases_the_oldest() {
        let now = Instant::now();
        let mut buffer = SortBuffer::new(2, Duration::from_secs(1));
        assert_eq!(buffer.push(Item(30, "c"), now), None);
        assert_eq!(buffer.push(Item(10, "a"), now), None);
        assert_eq!(buffer.push(Item(20, "b"), now), Some(Item(10, "a")));
        assert_eq!(buffer.drain_all(), [Item(20, "b"), Item(30, "c")]);
    }

    #[test]
    fn equal_times_keep_arrival_order() {
        let now = Instant::now();
        let mut buffer = SortBuffer::new(10, Duration::from_secs(1));
        for name in ["x", "y", "z"] {
            buffer.push(Item(5, name), now);
        }
        assert_eq!(buffer.drain_all(), [Item(5, "x"), Item(5, "y"), Item(5, "z")]);
    }

    #[test]
    fn expired_items_leave_with_everything_older() {
        let start = Instant::now();
        let mut buffer = SortBuffer::new(10, Duration::from_secs(1));
        buffer.push(Item(50, "early-arrival"), start);
        buffer.push(Item(10, "late-arrival-old"), start + Duration::from_millis(900));
        buffer.push(Item(90, "late-arrival-new"), start + Duration::from_millis(900));
        assert!(buffer.drain_expired(start + Duration::from_millis(999)).is_empty());
        assert_eq!(buffer.next_deadline(), Some(start + Duration::from_secs(1)));
        let released = buffer.drain_expired(start + Duration::from_secs(1));
        assert_eq!(released, [Item(10, "late-arrival-old"), Item(50, "early-arrival")]);
        assert_eq!(buffer.len(), 1);
    }
}
