//! The unit every pipeline stage hands to the next: a decoded event on its way into
//! the observer ring (and from there to gRPC streams, metrics and exporters).

use sightline_proto::Timestamp;
use sightline_proto::flow::{AgentEvent, DebugEvent, Flow, LostEvent};

use crate::flow_record::FlowRecord;

/// One observed event. Flows carry their own time; the other kinds are stamped
/// when they are produced, because their messages have no time field. Every kind
/// is boxed so an `Event` is a few words: the decoder returns one per packet event
/// and copying a 200-byte enum showed up as a tenth of its cost.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Flow(Box<FlowRecord>),
    Agent {
        time: Timestamp,
        event: Box<AgentEvent>,
    },
    Debug {
        time: Timestamp,
        event: Box<DebugEvent>,
    },
    /// Events lost before they reached the ring (perf ring buffer, events queue).
    Lost {
        time: Timestamp,
        event: Box<LostEvent>,
    },
}

impl Event {
    pub fn flow(flow: Flow) -> Self {
        Event::Flow(Box::new(FlowRecord::new(flow)))
    }

    pub fn time(&self) -> Timestamp {
        match self {
            Event::Flow(flow) => flow.time.unwrap_or_default(),
            Event::Agent { time, .. } | Event::Debug { time, .. } | Event::Lost { time, .. } => *time,
        }
    }
}

/// Where a producer (the datapath decoder, the Kubernetes watchers) delivers events.
/// Implementations must not block for long: the datapath calls this on its hot path.
pub trait EventSink: Send {
    fn publish(&mut self, event: Event);

    /// Called by producers at least once a second, also when they have nothing to
    /// publish: stages that queue work of their own (agent events from the Kubernetes
    /// watchers) deliver it here, so it does not wait for the next packet.
    fn idle(&mut self) {}
}

impl<S: EventSink + ?Sized> EventSink for Box<S> {
    fn publish(&mut self, event: Event) {
        (**self).publish(event);
    }

    fn idle(&mut self) {
        (**self).idle();
    }
}
