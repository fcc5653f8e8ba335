//! The pipeline's last stage: counts and tracks flows, then writes events to the ring.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::namespaces::{Clock, NamespaceTracker, Namespaces};
use super::rate::{FlowCounter, FlowRate};
use super::ring::RingWriter;
use crate::event::{Event, EventSink};

/// What the server reads about the pipeline besides the ring.
#[derive(Debug, Default)]
pub struct ObserverStats {
    /// Flows written to the ring since start, overwritten ones included; ServerStatus's
    /// `seen_flows`. Other event kinds are not counted.
    pub seen_flows: AtomicU64,
    /// Published by the sink's `NamespaceTracker`; reading never blocks it.
    pub namespaces: Namespaces,
    /// Counted by the sink's `FlowCounter` for ServerStatus.flows_rate.
    pub flow_rate: FlowRate,
}

impl ObserverStats {
    /// Stats whose namespace expiry follows `clock` instead of the system's.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            seen_flows: AtomicU64::new(0),
            namespaces: Namespaces::with_clock(clock),
            flow_rate: FlowRate::default(),
        }
    }
}

/// Called with each entry on its way into the ring.
pub type EntryTap = Box<dyn FnMut(&Arc<super::entry::Entry>) + Send>;

/// `EventSink` in front of the ring. Not `Clone`: the ring has exactly one writer.
pub struct RingSink {
    writer: RingWriter,
    stats: Arc<ObserverStats>,
    namespaces: NamespaceTracker,
    flows: FlowCounter,
    /// Sees every entry as it goes into the ring (the flow-log exporter).
    tap: Option<EntryTap>,
}

impl RingSink {
    /// The ring's only writer, publishing what it counts into `stats` (shared with the
    /// server that answers ServerStatus and GetNamespaces).
    pub fn new(writer: RingWriter, stats: Arc<ObserverStats>) -> Self {
        Self {
            writer,
            stats,
            namespaces: NamespaceTracker::default(),
            flows: FlowCounter::default(),
            tap: None,
        }
    }

    /// Shows every entry to `tap` before it is written; the entry is shared, not copied.
    pub fn with_tap(mut self, tap: impl FnMut(&Arc<super::entry::Entry>) + Send + 'static) -> Self {
        self.tap = Some(Box::new(tap));
        self
    }
}

impl RingSink {
    /// A reading handle on the ring this sink writes.
    pub fn ring(&self) -> super::ring::Ring {
        self.writer.ring()
    }
}

impl EventSink for RingSink {
    fn publish(&mut self, event: Event) {
        if let Event::Flow(flow) = &event {
            self.namespaces.observe(flow, &self.stats.namespaces);
            // A flow without a time falls in no second (nor does it in Hubble's ring walk).
            if let Some(time) = flow.time {
                self.flows.count(time, &self.stats.flow_rate);
            }
            self.stats.seen_flows.fetch_add(1, Ordering::Relaxed);
        }
        let entry = Arc::new(super::entry::Entry::new(event));
        if let Some(tap) = &mut self.tap {
            tap(&entry);
        }
        self.writer.write(entry);
    }

    fn idle(&mut self) {
        self.namespaces.tick(&self.stats.namespaces);
        self.flows.tick(sightline_proto::Timestamp::now());
    }
}
