//! The observer ring: the last `capacity` events, one writer, many lock-free readers.
//!
//! Each slot is a small seqlock around an `Arc<Entry>` pointer. The writer marks the
//! slot busy, swaps the pointer, stamps the slot with the event's sequence number and
//! only then advances `head`, so an event is readable the moment `write` returns
//! (Hubble hides the newest event until the next write; we do not).
//!
//! Reclamation: a reader announces itself in the slot's `readers` count (a SeqCst
//! read-modify-write) before it loads the pointer and leaves after it has taken its
//! own reference. The writer replaces the pointer first and checks the count after a
//! SeqCst fence, so a reader that saw the old pointer is always seen by the writer,
//! which then parks the old `Arc` in `limbo` until the slot has no readers. Readers
//! never wait; the writer never waits either, and pays one fence per event.

use std::ptr;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, fence};

use tokio::sync::Notify;

pub use super::entry::{EncodeArena, Entry};

/// Marks a slot whose pointer is being replaced.
const BUSY: u64 = u64::MAX;
/// Largest capacity we accept: 2^20 - 1 events.
pub const MAX_CAPACITY: usize = (1 << 20) - 1;
/// Hubble's default (`hubble-event-buffer-capacity`).
pub const DEFAULT_CAPACITY: usize = 4095;

/// A ring that cannot be built; the message names the accepted range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RingError {
    /// The requested capacity (`--event-buffer-capacity`, Hubble's
    /// `hubble-event-buffer-capacity`) is not 2^n - 1 or exceeds [`MAX_CAPACITY`].
    #[error("ring capacity {0} must be one less than a power of two, between 1 and {MAX_CAPACITY}")]
    InvalidCapacity(usize),
}

struct Slot {
    seq: AtomicU64,
    event: AtomicPtr<Entry>,
    readers: AtomicU32,
}

impl Slot {
    fn empty() -> Self {
        Self {
            seq: AtomicU64::new(BUSY),
            event: AtomicPtr::new(ptr::null_mut()),
            readers: AtomicU32::new(0),
        }
    }
}

struct Shared {
    slots: Box<[Slot]>,
    mask: u64,
    capacity: u64,
    /// Sequence number of the next write; every sequence below it is readable
    /// unless it was overwritten.
    head: AtomicU64,
    parked_readers: AtomicUsize,
    wakeup: Notify,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            let old = slot.event.swap(ptr::null_mut(), SeqCst);
            if !old.is_null() {
                // SAFETY: every non-null slot pointer came from `Arc::into_raw` and owns one count.
                drop(unsafe { Arc::from_raw(old) });
            }
        }
    }
}

/// Creates a ring; the writer is unique, the handle can be cloned for readers.
pub fn ring(capacity: usize) -> Result<(RingWriter, Ring), RingError> {
    if capacity == 0 || capacity > MAX_CAPACITY || !(capacity + 1).is_power_of_two() {
        return Err(RingError::InvalidCapacity(capacity));
    }
    let slots: Box<[Slot]> = (0..=capacity).map(|_| Slot::empty()).collect();
    let shared = Arc::new(Shared {
        slots,
        mask: capacity as u64,
        capacity: capacity as u64,
        head: AtomicU64::new(0),
        parked_readers: AtomicUsize::new(0),
        wakeup: Notify::new(),
    });
    Ok((
        RingWriter {
            shared: shared.clone(),
            next: 0,
            limbo: Vec::new(),
        },
        Ring { shared },
    ))
}

/// The single writer of a ring.
pub struct RingWriter {
    shared: Arc<Shared>,
    next: u64,
    /// Replaced events some reader may still be taking a reference to.
    limbo: Vec<(usize, *const Entry)>,
}

// SAFETY: the raw pointers in `limbo` are owned `Arc<Entry>` counts; `Entry` is Send + Sync.
unsafe impl Send for RingWriter {}

impl RingWriter {
    /// Appends an event, overwriting the oldest one once the ring is full.
    #[inline]
    pub fn write(&mut self, event: Arc<Entry>) {
        let seq = self.next;
        let index = (seq & self.shared.mask) as usize;
        let slot = &self.shared.slots[index];
        // Only this writer stores slot pointers, so a plain load reads the old one.
        let old = slot.event.load(Relaxed);
        slot.seq.store(BUSY, Relaxed);
        // Readers that see the new pointer must also see BUSY or the new stamp.
        fence(Release);
        slot.event.store(Arc::into_raw(event).cast_mut(), Relaxed);
        slot.seq.store(seq, Release);
        self.next = seq + 1;
        self.shared.head.store(seq + 1, Release);
        // One full barrier serves both store-then-load handshakes below: a reader that
        // announced itself (slot `readers`, `parked_readers`, SeqCst read-modify-writes)
        // before this fence is seen by the loads after it; one that announced itself
        // later sees the new pointer and head.
        fence(SeqCst);
        if !old.is_null() {
            // Acquire pairs with a reader's release of the slot: its reference count
            // increment happens before we drop ours.
            if slot.readers.load(Acquire) == 0 {
                // SAFETY: `old` owned one count and no reader can still be loading it.
                drop(unsafe { Arc::from_raw(old) });
            } else {
                self.limbo.push((index, old));
            }
        }
        if !self.limbo.is_empty() {
            self.release_limbo();
        }
        if self.shared.parked_readers.load(Relaxed) > 0 {
            self.shared.wakeup.notify_waiters();
        }
    }

    #[cold]
    fn release_limbo(&mut self) {
        let slots = &self.shared.slots;
        self.limbo.retain(|&(index, old)| {
            if slots[index].readers.load(SeqCst) == 0 {
                // SAFETY: the slot had no reader at some point after `old` was swapped out.
                drop(unsafe { Arc::from_raw(old) });
                false
            } else {
                true
            }
        });
    }

    /// Another reading handle onto this writer's ring; it can read every event still held.
    pub fn ring(&self) -> Ring {
        Ring {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for RingWriter {
    fn drop(&mut self) {
        // Readers hold a slot count only for a few instructions; waiting here is
        // bounded and happens once, at shutdown.
        while !self.limbo.is_empty() {
            self.release_limbo();
            std::thread::yield_now();
        }
    }
}

/// What a reader finds at a sequence number.
#[derive(Debug, Clone)]
pub enum Read {
    /// The event at that sequence number; the reader keeps it alive after it is overwritten.
    Event(Arc<Entry>),
    /// The event was overwritten; the oldest readable one is `oldest`.
    Overwritten {
        /// Sequence number to continue from; everything before it is lost to this reader.
        oldest: u64,
    },
    /// Not written yet.
    Ahead,
}

/// A reading handle; cheap to clone, never blocks the writer.
#[derive(Clone)]
pub struct Ring {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .field("head", &self.head())
            .finish()
    }
}

impl Ring {
    /// How many events the ring holds once full; older ones are overwritten.
    pub fn capacity(&self) -> u64 {
        self.shared.capacity
    }

    /// Sequence number of the next write (= number of events ever written).
    pub fn head(&self) -> u64 {
        self.shared.head.load(SeqCst)
    }

    /// Events currently held.
    pub fn len(&self) -> u64 {
        self.head().min(self.shared.capacity)
    }

    /// True until the first event is written (an overwritten ring is never empty again).
    pub fn is_empty(&self) -> bool {
        self.head() == 0
    }

    /// Sequence number of the oldest event still held.
    pub fn oldest(&self) -> u64 {
        self.head().saturating_sub(self.shared.capacity)
    }

    /// The event with sequence number `seq`, or why it cannot be read; never waits.
    pub fn get(&self, seq: u64) -> Read {
        let head = self.head();
        if seq >= head {
            return Read::Ahead;
        }
        let oldest = head.saturating_sub(self.shared.capacity);
        if seq < oldest {
            return Read::Overwritten { oldest };
        }
        let slot = &self.shared.slots[(seq & self.shared.mask) as usize];
        slot.readers.fetch_add(1, SeqCst);
        let before = slot.seq.load(SeqCst);
        let event = slot.event.load(SeqCst);
        let after = slot.seq.load(SeqCst);
        let found = if before == seq && after == seq && !event.is_null() {
            // SAFETY: the slot held `seq` throughout, so `event` is that write's pointer,
            // and our `readers` count keeps the writer from releasing it.
            unsafe {
                Arc::increment_strong_count(event);
                Some(Arc::from_raw(event))
            }
        } else {
            None
        };
        slot.readers.fetch_sub(1, SeqCst);
        match found {
            Some(event) => Read::Event(event),
            // The writer lapped us between the head check and the slot read.
            None => Read::Overwritten { oldest: self.oldest() },
        }
    }

    /// Readers currently parked in [`Ring::wait_for`] (live follow streams).
    pub fn waiting_readers(&self) -> usize {
        self.shared.parked_readers.load(SeqCst)
    }

    /// Waits until an event with sequence `seq` may have been written.
    pub async fn wait_for(&self, seq: u64) {
        if self.head() > seq {
            return;
        }
        let notified = self.shared.wakeup.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let _parked = Parked::new(&self.shared.parked_readers);
        if self.head() > seq {
            return;
        }
        notified.await;
    }
}

/// Counts a parked reader for as long as it waits, even when its future is dropped.
struct Parked<'a>(&'a AtomicUsize);

impl<'a> Parked<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, SeqCst);
        Self(count)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sightline_proto::Timestamp;

    use crate::event::Event;

    fn debug(n: i64) -> Arc<Entry> {
        Arc::new(Entry::new(Event::Debug {
            time: Timestamp { seconds: n, nanos: 0 },
            event: Box::default(),
        }))
    }

    #[test]
    fn rejects_capacities_that_are_not_a_power_of_two_minus_one() {
        assert_eq!(ring(0).err(), Some(RingError::InvalidCapacity(0)));
        assert_eq!(ring(4096).err(), Some(RingError::InvalidCapacity(4096)));
        assert_eq!(ring(1 << 21).err(), Some(RingError::InvalidCapacity(1 << 21)));
        assert!(ring(1).is_ok());
        assert!(ring(MAX_CAPACITY).is_ok());
    }

    #[test]
    fn newest_event_is_visible_immediately_and_old_ones_are_reported_overwritten() {
        let (mut writer, reader) = ring(3).unwrap();
        assert!(matches!(reader.get(0), Read::Ahead));
        writer.write(debug(0));
        assert!(matches!(reader.get(0), Read::Event(e) if e.time().seconds == 0));
        for n in 1..6 {
            writer.write(debug(n));
        }
        assert_eq!(reader.len(), 3);
        assert_eq!(reader.oldest(), 3);
        assert!(matches!(reader.get(2), Read::Overwritten { oldest: 3 }));
        assert!(matches!(reader.get(5), Read::Event(e) if e.time().seconds == 5));
        assert!(matches!(reader.get(6), Read::Ahead));
    }

    #[test]
    fn events_are_freed_when_overwritten_and_not_held() {
        let (mut writer, reader) = ring(1).unwrap();
        let first = debug(1);
        writer.write(first.clone());
        let held = match reader.get(0) {
            Read::Event(e) => e,
            other => panic!("{other:?}"),
        };
        // Capacity 1 has two slots: the third write replaces the first.
        writer.write(debug(2));
        writer.write(debug(3));
        assert!(matches!(reader.get(0), Read::Overwritten { oldest: 2 }));
        assert_eq!(Arc::strong_count(&first), 2, "the test and the reader's copy remain");
        drop(held);
        assert_eq!(Arc::strong_count(&first), 1);
    }

    #[tokio::test]
    async fn parked_reader_wakes_on_write() {
        let (mut writer, reader) = ring(7).unwrap();
        let waiter = tokio::spawn({
            let reader = reader.clone();
            async move {
                reader.wait_for(0).await;
                matches!(reader.get(0), Read::Event(_))
            }
        });
        tokio::task::yield_now().await;
        writer.write(debug(1));
        assert!(waiter.await.unwrap());
    }

    #[test]
    fn concurrent_readers_see_consistent_events() {
        let (mut writer, reader) = ring(15).unwrap();
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let reader = reader.clone();
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    while seen < 20_000 {
                        let head = reader.head();
                        if head == 0 {
                            continue;
                        }
                        if let Read::Event(e) = reader.get(head - 1) {
                            // Each event carries its own sequence number as time.
                            assert_eq!(e.time().seconds as u64, head - 1);
                        }
                        seen += 1;
                    }
                })
            })
            .collect();
        for n in 0..200_000 {
            writer.write(debug(n));
        }
        for r in readers {
            r.join().unwrap();
        }
    }
}
