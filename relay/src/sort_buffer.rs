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

/// What the heap orders: time, then arrival; `slot` finds the item. Items stay in
/// their slot while the heap moves only these 32-byte keys around.
type Key = (i128, u64, u32);

struct Held<T> {
    time: i128,
    seq: u64,
    arrived: Instant,
    item: T,
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
    heap: BinaryHeap<Reverse<Key>>,
    slots: Vec<Option<Held<T>>>,
    free: Vec<u32>,
    capacity: usize,
    drain_timeout: Duration,
    seq: u64,
}

impl<T: Timed> SortBuffer<T> {
    pub fn new(capacity: usize, drain_timeout: Duration) -> Self {
        let capacity = capacity.max(1);
        Self {
            heap: BinaryHeap::with_capacity(capacity + 1),
            slots: Vec::with_capacity(capacity + 1),
            free: Vec::with_capacity(capacity + 1),
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
        let time = item.time_nanos();
        let held = Held {
            time,
            seq: self.seq,
            arrived: now,
            item,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(held);
                slot
            }
            None => {
                self.slots.push(Some(held));
                // At most capacity + 1 items are ever held at once.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.heap.push(Reverse((time, self.seq, slot)));
        (self.heap.len() > self.capacity).then(|| self.pop()).flatten()
    }

    fn pop(&mut self) -> Option<T> {
        let Reverse((_, _, slot)) = self.heap.pop()?;
        self.free.push(slot);
        self.slots.get_mut(slot as usize)?.take().map(|held| held.item)
    }

    fn held(&self) -> impl Iterator<Item = &Held<T>> {
        self.slots.iter().flatten()
    }

    /// Releases, oldest first, everything up to and including the newest item that
    /// has waited at least the drain timeout: anything older than it cannot be
    /// overtaken by a later arrival within the window either.
    pub fn drain_expired(&mut self, now: Instant) -> Vec<T> {
        let Some(cutoff) = self
            .held()
            .filter(|held| now.duration_since(held.arrived) >= self.drain_timeout)
            .map(|held| (held.time, held.seq))
            .max()
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(Reverse((time, seq, _))) = self.heap.peek() {
            if (*time, *seq) > cutoff {
                break;
            }
            out.extend(self.pop());
        }
        out
    }

    /// When the next item expires, if any is waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held().map(|held| held.arrived + self.drain_timeout).min()
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
