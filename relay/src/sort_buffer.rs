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
    /// Nanoseconds since the Unix epoch.
    fn time_nanos(&self) -> i128;
}

/// What the heap orders, packed into one integer so the heap compares and moves
/// 16 bytes: the time in the high 64 bits (order-preserving), then the arrival
/// number and the slot holding the item. Arrival numbers wrap after 2^44 items, where
/// two items with the same time may swap places once.
type Key = u128;

const SLOT_BITS: u32 = 20;
const SLOT_MASK: u128 = (1 << SLOT_BITS) - 1;
const SEQ_MASK: u64 = (1 << (64 - SLOT_BITS)) - 1;
/// Most items a buffer holds: `capacity + 1` slots must be numbered in `SLOT_BITS`.
pub const MAX_CAPACITY: usize = (1 << SLOT_BITS) - 2;

fn key(time: i128, seq: u64, slot: u32) -> Key {
    let clamped = i64::try_from(time).unwrap_or(if time < 0 { i64::MIN } else { i64::MAX });
    // Flipping the sign bit maps i64 order onto u64 order.
    let time_bits = (clamped as u64) ^ (1 << 63);
    (u128::from(time_bits) << 64) | (u128::from(seq & SEQ_MASK) << SLOT_BITS) | u128::from(slot)
}

fn slot_of(key: Key) -> usize {
    (key & SLOT_MASK) as usize
}

struct Held<T> {
    key: Key,
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

/// Holds events from several inputs and releases them in time order, each at most `drain_timeout` late.
pub struct SortBuffer<T> {
    heap: BinaryHeap<Reverse<Key>>,
    slots: Vec<Option<Held<T>>>,
    free: Vec<u32>,
    capacity: usize,
    drain_timeout: Duration,
    seq: u64,
}

impl<T: Timed> SortBuffer<T> {
    /// `capacity` is clamped to 1..=[`MAX_CAPACITY`].
    pub fn new(capacity: usize, drain_timeout: Duration) -> Self {
        let capacity = capacity.clamp(1, MAX_CAPACITY);
        Self {
            heap: BinaryHeap::with_capacity(capacity + 1),
            slots: Vec::with_capacity(capacity + 1),
            free: Vec::with_capacity(capacity + 1),
            capacity,
            drain_timeout,
            seq: 0,
        }
    }

    /// How many events are held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Adds `item`; returns the oldest item when that made the buffer overflow.
    pub fn push(&mut self, item: T, now: Instant) -> Option<T> {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                // At most capacity + 1 <= 2^SLOT_BITS - 1 items are ever held at once.
                (self.slots.len() - 1) as u32
            }
        };
        let key = key(item.time_nanos(), self.seq, slot);
        self.slots[slot as usize] = Some(Held {
            key,
            arrived: now,
            item,
        });
        self.heap.push(Reverse(key));
        (self.heap.len() > self.capacity).then(|| self.pop()).flatten()
    }

    fn pop(&mut self) -> Option<T> {
        let Reverse(key) = self.heap.pop()?;
        let slot = slot_of(key);
        self.free.push(slot as u32);
        self.slots.get_mut(slot)?.take().map(|held| held.item)
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
            .map(|held| held.key)
            .max()
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        // Keys differ in their arrival numbers, so the slot bits never decide.
        while let Some(Reverse(key)) = self.heap.peek() {
            if *key > cutoff {
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

    /// Every held event in time order, emptying the buffer.
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
