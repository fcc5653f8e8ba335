//! Which direction of a connection is the request: the first one seen, corrected by
//! what the packets themselves say (a bare SYN opens, SYN-ACK and echo replies answer).

use rustc_hash::FxHashMap;

use sightline_bpf_common::{FlowKey, IPPROTO_ICMP, IPPROTO_ICMPV6, tcp_flags};

/// Address and port; addresses as integers so ordering and hashing are a few
/// instructions (this runs once per packet event).
type Endpoint = (u128, u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnectionKey {
    protocol: u8,
    low: Endpoint,
    high: Endpoint,
}

/// Bounded: when full it forgets everything, which at worst mislabels the next packet
/// of a long-lived connection whose first packet was seen before.
#[derive(Debug)]
pub(crate) struct Connections {
    /// Whether the lower endpoint of the key is the one that asked.
    low_requested: FxHashMap<ConnectionKey, bool>,
    capacity: usize,
}

impl Connections {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            low_requested: FxHashMap::with_capacity_and_hasher(capacity.min(4096), Default::default()),
            capacity,
        }
    }

    /// The connection and whether the packet's source is its lower endpoint.
    fn key(flow: &FlowKey) -> (ConnectionKey, bool) {
        let src = (u128::from_be_bytes(flow.src_addr), flow.src_port);
        let dst = (u128::from_be_bytes(flow.dst_addr), flow.dst_port);
        let src_is_low = src <= dst;
        let (low, high) = if src_is_low { (src, dst) } else { (dst, src) };
        (
            ConnectionKey {
                protocol: flow.protocol,
                low,
                high,
            },
            src_is_low,
        )
    }

    /// Records the packet and says whether it travels in the reply direction.
    pub(crate) fn observe(&mut self, flow: &FlowKey, tcp: u16, icmp_type: u8) -> bool {
        let (key, src_is_low) = Self::key(flow);
        // Whether the packet itself says its source is the requester.
        let source_requests = match flow.protocol {
            IPPROTO_ICMP => match icmp_type {
                8 => Some(true),
                0 => Some(false),
                _ => None,
            },
            IPPROTO_ICMPV6 => match icmp_type {
                128 => Some(true),
                129 => Some(false),
                _ => None,
            },
            _ if tcp & tcp_flags::SYN != 0 => Some(tcp & tcp_flags::ACK == 0),
            _ => None,
        };
        if self.low_requested.len() >= self.capacity && !self.low_requested.contains_key(&key) {
            self.low_requested.clear();
        }
        let low_requested = match source_requests {
            Some(source_requests) => {
                let low_requested = source_requests == src_is_low;
                self.low_requested.insert(key, low_requested);
                low_requested
            }
            None => *self.low_requested.entry(key).or_insert(src_is_low),
        };
        low_requested != src_is_low
    }

    /// Like `observe` but never records (drops must not define a connection's direction).
    pub(crate) fn peek(&self, flow: &FlowKey) -> Option<bool> {
        let (key, src_is_low) = Self::key(flow);
        self.low_requested
            .get(&key)
            .map(|low_requested| *low_requested != src_is_low)
    }
}
