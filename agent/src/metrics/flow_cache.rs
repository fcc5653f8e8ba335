//! One lookup per flow for every handler whose series follow from a flow's numbers
//! and its shared endpoints.
//!
//! The per-family [`Shortcuts`](super::shortcut::Shortcuts) still cost one hash
//! lookup per handler and flow. Most handlers (`flow`, `drop`, `tcp`,
//! `port-distribution`, `icmp`, `flows-to-world` with endpoint contexts) read
//! nothing of a flow but a handful of numbers and the endpoints enrichment
//! attached: a [`FlowKey`] holds all of those numbers at once, so the counters
//! those handlers bumped for one flow are the counters they bump for every flow
//! with the same key. The first such flow runs the handlers and records the
//! counters they touched; the next ones bump the recorded counters directly.
//!
//! Endpoints are keyed by address and pinned by `Weak`, as in `shortcut.rs`: the
//! address cannot name another pod while an entry holds it, and an entry whose
//! pod is gone is dropped when the cache makes room. Removing series (a pod's
//! expiry) clears the cache, so no entry leads to a series the scrape no longer shows.

use std::sync::{Arc, Weak};

use rustc_hash::FxHashMap;
use sightline_proto::flow::{Endpoint, layer4};

use super::series::CounterCell;
use super::shortcut::{l4_kind, l7_kind};
use crate::flow_record::{FlowRecord, Shared, SharedEndpoint};

/// At most this many counters per flow (flow, drop, three TCP flags,
/// port-distribution, icmp, flows-to-world); a flow that bumps more is not cached.
const MAX_COUNTERS: usize = 8;

/// Every input of the cacheable handlers: event type, verdict and drop reason,
/// L4/L7 kind, ports or ICMP type and code, TCP flags, `is_reply`, IP presence
/// and version, direction, and the endpoints by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    words: [u64; 4],
    direction: i32,
    source: usize,
    destination: usize,
}

/// A flow's key with the endpoints it names, to pin them if the key is stored.
#[derive(Debug, Clone, Copy)]
pub struct Keyed<'a> {
    key: FlowKey,
    source: Option<&'a SharedEndpoint>,
    destination: Option<&'a SharedEndpoint>,
}

/// The endpoint a side's labels are read from, when it is known by reference:
/// `Some(None)` when the flow has none at all, `None` when it carries its own copy.
fn side<'a>(shared: &'a Option<SharedEndpoint>, own: &Option<Box<Endpoint>>) -> Option<Option<&'a SharedEndpoint>> {
    match (shared, own) {
        (Some(shared), _) => Some(Some(shared)),
        (None, None) => Some(None),
        (None, Some(_)) => None,
    }
}

fn address(endpoint: Option<&SharedEndpoint>) -> usize {
    endpoint.map_or(0, |e| Arc::as_ptr(e) as usize)
}

fn unsigned(value: i32) -> u64 {
    u64::from(value as u32)
}

impl FlowKey {
    /// The key of `flow`, or `None` when an endpoint is the flow's own copy (its
    /// address identifies nothing beyond this flow).
    pub fn of(flow: &FlowRecord) -> Option<Keyed<'_>> {
        let source = side(&flow.metadata.source, &flow.flow.source)?;
        let destination = side(&flow.metadata.destination, &flow.flow.destination)?;
        let (event_present, kind, sub_type) = flow
            .event_type
            .as_ref()
            .map_or((0, 0, 0), |t| (1, t.r#type, t.sub_type));
        // Ports for TCP/UDP/SCTP, type and code for ICMP; TCP flags beside the port.
        let (l4_detail, tcp_flags) = match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
            Some(layer4::Protocol::Tcp(tcp)) => {
                let flags = tcp.flags.as_ref().map_or(0, |f| {
                    1 | u64::from(f.fin) << 1 | u64::from(f.syn) << 2 | u64::from(f.ack) << 3 | u64::from(f.rst) << 4
                });
                (u64::from(tcp.destination_port), flags)
            }
            Some(layer4::Protocol::Udp(udp)) => (u64::from(udp.destination_port), 0),
            Some(layer4::Protocol::Sctp(sctp)) => (u64::from(sctp.destination_port), 0),
            Some(layer4::Protocol::IcmPv4(icmp)) => (u64::from(icmp.r#type) | u64::from(icmp.code) << 32, 0),
            Some(layer4::Protocol::IcmPv6(icmp)) => (u64::from(icmp.r#type) | u64::from(icmp.code) << 32, 0),
            Some(layer4::Protocol::Vrrp(_)) | Some(layer4::Protocol::Igmp(_)) | None => (0, 0),
        };
        let is_reply = flow.is_reply.as_ref().map_or(0, |r| 1 + u64::from(r.value));
        let has_ip = u64::from(flow.flow.ip.is_some() || flow.addresses.is_some());
        let small = l4_kind(flow)
            | l7_kind(flow) << 3
            | event_present << 5
            | is_reply << 6
            | has_ip << 8
            | tcp_flags << 9
            | unsigned(flow.ip_version()) << 32;
        Some(Keyed {
            key: FlowKey {
                words: [
                    unsigned(kind) | unsigned(sub_type) << 32,
                    unsigned(flow.verdict) | unsigned(flow.drop_reason_desc) << 32,
                    l4_detail,
                    small,
                ],
                direction: flow.traffic_direction,
                source: address(source),
                destination: address(destination),
            },
            source,
            destination,
        })
    }
}

/// The counters the cacheable handlers bumped for one flow, collected while they
/// run on a cache miss.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    active: bool,
    /// A series was refused (series limit) or more counters were bumped than an
    /// entry holds: the flow's outcome cannot be replayed from counters.
    incomplete: bool,
    counters: Vec<Arc<CounterCell>>,
}

impl Recorder {
    pub fn start(&mut self) {
        self.active = true;
        self.incomplete = false;
        self.counters.clear();
    }

    /// Notes a counter that was bumped once.
    pub fn bumped(&mut self, cell: &Arc<CounterCell>) {
        if self.active {
            if self.counters.len() < MAX_COUNTERS {
                self.counters.push(Arc::clone(cell));
            } else {
                self.incomplete = true;
            }
        }
    }

    /// Notes that a series was not created (the family is at its limit).
    pub fn refused(&mut self) {
        if self.active {
            self.incomplete = true;
        }
    }

    /// Stops recording; the counters, when they are the flow's whole outcome.
    fn finish(&mut self) -> Option<Counters> {
        self.active = false;
        if self.incomplete {
            self.counters.clear();
            return None;
        }
        let mut counters = Counters::default();
        for (slot, cell) in counters.cells.iter_mut().zip(self.counters.drain(..)) {
            *slot = Some(cell);
        }
        Some(counters)
    }
}

#[derive(Debug, Default)]
struct Counters {
    cells: [Option<Arc<CounterCell>>; MAX_COUNTERS],
}

#[derive(Debug)]
struct Entry {
    counters: Counters,
    /// Keeps the addresses in the key from being reused while the entry exists.
    pinned: [Option<Weak<Shared<Endpoint>>>; 2],
}

impl Entry {
    fn is_stale(&self) -> bool {
        self.pinned.iter().flatten().any(|e| e.strong_count() == 0)
    }
}

/// Flow keys to the counters their flows bump. Bounded like the shortcuts: at
/// capacity, entries of departed pods go first, all of them if that is not enough.
#[derive(Debug)]
pub struct FlowCache {
    map: FxHashMap<FlowKey, Entry>,
    capacity: usize,
}

impl FlowCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: FxHashMap::default(),
            capacity,
        }
    }

    /// Bumps the counters `keyed` led to before; false when it is not cached.
    pub fn replay(&self, keyed: &Keyed<'_>) -> bool {
        let Some(entry) = self.map.get(&keyed.key) else {
            return false;
        };
        for cell in entry.counters.cells.iter().map_while(Option::as_ref) {
            cell.bump();
        }
        true
    }

    /// Stores what `recorder` collected for `keyed`, if it is the whole outcome.
    pub fn store(&mut self, keyed: &Keyed<'_>, recorder: &mut Recorder) {
        let Some(counters) = recorder.finish() else { return };
        if self.map.len() >= self.capacity {
            self.map.retain(|_, entry| !entry.is_stale());
            if self.map.len() >= self.capacity / 2 {
                self.map.clear();
            }
        }
        let pinned = [keyed.source.map(Arc::downgrade), keyed.destination.map(Arc::downgrade)];
        self.map.insert(keyed.key, Entry { counters, pinned });
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
