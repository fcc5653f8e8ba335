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
    /// A network flow (L3/L4 or L7), served by `GetFlows` as `GetFlowsResponse.flow`.
    Flow(Box<FlowRecord>),
    /// A Cilium-style agent notification (agent start, endpoint, ipcache, service or
    /// policy change), served by `GetAgentEvents` and by `GetFlows` as `agent_event`.
    Agent {
        /// When the producer created the event; the ring orders events by it.
        time: Timestamp,
        /// The message as `GetAgentEvents` sends it.
        event: Box<AgentEvent>,
    },
    /// A datapath debug message (program attach/detach, parse failure), served by
    /// `GetDebugEvents` and by `GetFlows` as `debug_event`.
    Debug {
        /// When the producer created the event; the ring orders events by it.
        time: Timestamp,
        /// The message as `GetDebugEvents` sends it.
        event: Box<DebugEvent>,
    },
    /// Events lost before they reached the ring (perf ring buffer, events queue).
    Lost {
        /// When the loss was noticed, not when the lost events happened.
        time: Timestamp,
        /// Where the events were lost and how many, as `GetFlows` reports it in
        /// `lost_events`.
        event: Box<LostEvent>,
    },
}

impl Event {
    /// Wraps a fully built flow, as producers without deferred fields (synthetic
    /// flows, tests) hand it over.
    pub fn flow(flow: Flow) -> Self {
        Event::Flow(Box::new(FlowRecord::new(flow)))
    }

    /// The time the ring orders this event by: the flow's own `time`, or the stamp
    /// taken when another kind was produced. A flow without a time gives the zero
    /// timestamp.
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
    /// Takes one event. There is no error or back-pressure path: a stage may hold
    /// an event for a moment (the enricher waits for late conntrack entries) and
    /// delivers it later, in arrival order, from `publish` or `idle`.
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
