//! The reading side of GetFlows / GetAgentEvents / GetDebugEvents: where a request
//! starts in the ring, which events it yields and when it ends.
//!
//! Hubble's semantics, with the documented fixes: `number` counts matching events
//! of the requested kind only (Hubble's rewind also counts other kinds), the newest
//! event is readable at once, and ring losses still pending at the end of a
//! non-follow stream are reported instead of dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_proto::Timestamp;

use super::entry::Entry;
use super::filter::FilterSet;
use super::ring::{Read, Ring};
use crate::event::Event;

/// Which events a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// GetFlows: flows, plus the pipeline's lost-event notices.
    Flows,
    /// GetAgentEvents: Hubble's `AgentEvent`s.
    Agent,
    /// GetDebugEvents: Hubble's `DebugEvent`s from the datapath.
    Debug,
}

impl Kind {
    fn accepts(self, event: &Event) -> bool {
        matches!(
            (self, event),
            (Kind::Flows, Event::Flow(_)) | (Kind::Agent, Event::Agent { .. }) | (Kind::Debug, Event::Debug { .. })
        )
    }
}

/// A read request as the cursor needs it, decoded from a Hubble request message.
#[derive(Debug, Clone)]
pub struct Query {
    /// Which stream the request came on; events of other kinds are skipped.
    pub kind: Kind,
    /// Hubble's `number`: how many matching events to return (the newest ones, or the
    /// oldest with `first`); 0 means no limit.
    pub number: u64,
    /// Hubble's `first`: read from the oldest end of the ring instead of the newest.
    pub first: bool,
    /// Hubble's `follow`: keep streaming new events instead of ending at the head seen
    /// when the request arrived.
    pub follow: bool,
    /// Skip events older than this; also where a rewind stops.
    pub since: Option<Timestamp>,
    /// End the stream at the first event newer than this.
    pub until: Option<Timestamp>,
    /// The request's whitelist and blacklist; applied to flows only.
    pub filters: FilterSet,
}

/// What a cursor yields.
#[derive(Debug, Clone)]
pub enum Item {
    /// A matching event, or a loss reported by the pipeline (flows only).
    Event(Arc<Entry>),
    /// This reader was overtaken by the writer and missed `count` events.
    RingLost {
        /// Events skipped since the previous report.
        count: u64,
        /// When the first of them was noticed missing (not when it was written).
        first: Timestamp,
        /// When the last of them was noticed missing.
        last: Timestamp,
    },
}

#[derive(Debug, Default)]
struct LostCounter {
    count: u64,
    first: Option<(Instant, Timestamp)>,
    last: Timestamp,
}

impl LostCounter {
    fn add(&mut self, count: u64) {
        let now = Timestamp::now();
        self.first.get_or_insert((Instant::now(), now));
        self.last = now;
        self.count += count;
    }

    fn due(&self, interval: Duration) -> bool {
        self.first.is_some_and(|(since, _)| since.elapsed() >= interval)
    }

    fn take(&mut self) -> Option<Item> {
        let (_, first) = self.first.take()?;
        let count = std::mem::take(&mut self.count);
        Some(Item::RingLost {
            count,
            first,
            last: self.last,
        })
    }
}

/// How many skipped events a cursor scans before letting other tasks run.
const SCAN_BUDGET: u32 = 4096;

/// One request's position in the ring: yields the events its [`Query`] selects, in
/// ring order, with a [`Item::RingLost`] whenever the writer overtook it.
pub struct Cursor {
    ring: Ring,
    query: Query,
    next: u64,
    /// Non-follow reads stop at the head seen when the request arrived.
    end: u64,
    /// The start position has been found (on the first `next`, not in `new`: the
    /// search can walk the whole ring and must yield like the reads do).
    started: bool,
    delivered: u64,
    lost: LostCounter,
    lost_interval: Duration,
    done: bool,
}

impl Cursor {
    /// A cursor over `ring` for `query`; `lost_interval` is how long missed events are
    /// accumulated before a follow stream reports them (they are also reported when the
    /// cursor catches up and at the end). The start position is found on the first read.
    pub fn new(ring: Ring, query: Query, lost_interval: Duration) -> Self {
        let end = ring.head();
        Self {
            ring,
            query,
            next: end,
            end,
            started: false,
            delivered: 0,
            lost: LostCounter::default(),
            lost_interval,
            done: false,
        }
    }

    fn wanted(&self, event: &Event) -> bool {
        self.query.kind.accepts(event) && (self.query.kind != Kind::Flows || self.query.filters.matches(event))
    }

    fn finish(&mut self) -> Option<Item> {
        self.done = true;
        self.lost.take()
    }

    /// The next item, waiting for the writer when a follow stream has caught up;
    /// `None` once the request is complete (never for a follow stream without `until`).
    pub async fn next(&mut self) -> Option<Item> {
        if !self.started {
            self.next = self.start().await;
            self.started = true;
        }
        let mut budget = SCAN_BUDGET;
        loop {
            if self.done {
                return None;
            }
            if !self.query.follow
                && (self.next >= self.end || (self.query.number > 0 && self.delivered >= self.query.number))
            {
                return self.finish();
            }
            if self.lost.due(self.lost_interval) {
                return self.lost.take();
            }
            budget -= 1;
            if budget == 0 {
                budget = SCAN_BUDGET;
                tokio::task::yield_now().await;
            }
            let event = match self.ring.get(self.next) {
                Read::Ahead => {
                    // Caught up: a good moment to report what we missed.
                    if let Some(lost) = self.lost.take() {
                        return Some(lost);
                    }
                    self.ring.wait_for(self.next).await;
                    continue;
                }
                Read::Overwritten { oldest } => {
                    // A non-follow read asked for the events before `end` only; the
                    // ones written after the request were never its to lose.
                    let missed_until = if self.query.follow {
                        oldest
                    } else {
                        oldest.min(self.end)
                    };
                    self.lost.add(missed_until.saturating_sub(self.next));
                    self.next = oldest;
                    continue;
                }
                Read::Event(event) => event,
            };
            self.next += 1;
            if let Event::Lost { .. } = event.event() {
                if self.query.kind == Kind::Flows {
                    return Some(Item::Event(event));
                }
                continue;
            }
            if !self.query.kind.accepts(&event) {
                continue;
            }
            let time = event.time();
            if self.query.until.is_some_and(|until| time > until) {
                return self.finish();
            }
            if self.query.since.is_some_and(|since| time < since) {
                continue;
            }
            if self.wanted(&event) {
                self.delivered += 1;
                return Some(Item::Event(event));
            }
        }
    }

    /// Where reading starts: the oldest event, the live end, or a rewind from the
    /// end over `number` matching events (or back to the first matching event
    /// before `since`). The rewind can cover a million entries with regex filters,
    /// so it yields to other tasks every [`SCAN_BUDGET`] entries, as reads do; a
    /// default-sized ring is searched without yielding.
    async fn start(&self) -> u64 {
        let (ring, query, end) = (&self.ring, &self.query, self.end);
        let oldest = ring.oldest();
        if query.first && query.since.is_none() {
            return oldest;
        }
        if query.follow && query.number == 0 && query.since.is_none() {
            return end;
        }
        if query.number == 0 && query.since.is_none() {
            return oldest;
        }
        let mut count = 0;
        let mut budget = SCAN_BUDGET;
        // If the writer overwrites entries while the search yields, `get` reports
        // the first overwritten one and reading starts just after it.
        let mut seq = end;
        while seq > oldest {
            seq -= 1;
            budget -= 1;
            if budget == 0 {
                budget = SCAN_BUDGET;
                tokio::task::yield_now().await;
            }
            let event = match ring.get(seq) {
                Read::Event(event) => event,
                _ => return seq + 1,
            };
            // Flows after `until` are not what the user asked for: do not count them
            // (Hubble does, and then returns nothing when they fill `number`).
            if !self.wanted(&event) || query.until.is_some_and(|until| event.time() > until) {
                continue;
            }
            match query.since {
                Some(since) if event.time() < since => return seq + 1,
                Some(_) => {}
                None => {
                    count += 1;
                    if count == query.number {
                        return seq;
                    }
                }
            }
        }
        oldest
    }
}
