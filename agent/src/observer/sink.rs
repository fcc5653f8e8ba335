//! The pipeline's last stage: counts and tracks flows, then writes events to the ring.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::namespaces::NamespaceTracker;
use super::ring::RingWriter;
use crate::event::{Event, EventSink};

/// What the server reads about the pipeline besides the ring.
#[derive(Debug, Default)]
pub struct ObserverStats {
    pub seen_flows: AtomicU64,
    pub namespaces: NamespaceTracker,
}

/// `EventSink` in front of the ring. Not `Clone`: the ring has exactly one writer.
pub struct RingSink {
    writer: RingWriter,
    stats: Arc<ObserverStats>,
}

impl RingSink {
    pub fn new(writer: RingWriter, stats: Arc<ObserverStats>) -> Self {
        Self { writer, stats }
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
            self.stats.namespaces.observe(flow);
            self.stats.seen_flows.fetch_add(1, Ordering::Relaxed);
        }
        self.writer.write(Arc::new(super::entry::Entry::new(event)));
    }
}
