//! Which direction of a connection is the request: the first one seen, corrected by
//! what the packets themselves say (a bare SYN opens, SYN-ACK and echo replies answer).

use rustc_hash::FxHashMap;

use sightline_bpf_common::{FlowKey, IPPROTO_ICMP, IPPROTO_ICMPV6, tcp_flags};

type Endpoint = ([u8; 16], u16);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ConnectionKey {
    protocol: u8,
    low: Endpoint,
    high: Endpoint,
}

/// Bounded: when full it forgets everything, which at worst mislabels the next packet
/// of a long-lived connection whose first packet was seen before.
#[derive(Debug)]
pub struct Connections {
    requesters: FxHashMap<ConnectionKey, Endpoint>,
    capacity: usize,
}

impl Connections {
    pub fn new(capacity: usize) -> Self {
        Self {
            requesters: FxHashMap::with_capacity_and_hasher(capacity.min(4096), Default::default()),
            capacity,
        }
    }

    fn key(flow: &FlowKey) -> (ConnectionKey, Endpoint) {
        let src = (flow.src_addr, flow.src_port);
        let dst = (flow.dst_addr, flow.dst_port);
        let (low, high) = if src <= dst { (src, dst) } else { (dst, src) };
        (
            ConnectionKey {
                protocol: flow.protocol,
                low,
                high,
            },
            src,
        )
    }

    /// Records the packet and says whether it travels in the reply direction.
    pub fn observe(&mut self, flow: &FlowKey, tcp: u16, icmp_type: u8) -> bool {
        let (key, src) = Self::key(flow);
        let dst = (flow.dst_addr, flow.dst_port);
        let stated = match flow.protocol {
            IPPROTO_ICMP => match icmp_type {
                8 => Some(src),
                0 => Some(dst),
                _ => None,
            },
            IPPROTO_ICMPV6 => match icmp_type {
                128 => Some(src),
                129 => Some(dst),
                _ => None,
            },
            _ if tcp & tcp_flags::SYN != 0 => Some(if tcp & tcp_flags::ACK != 0 { dst } else { src }),
            _ => None,
        };
        if self.requesters.len() >= self.capacity && !self.requesters.contains_key(&key) {
            self.requesters.clear();
        }
        let requester = match stated {
            Some(requester) => {
                self.requesters.insert(key, requester);
                requester
            }
            None => *self.requesters.entry(key).or_insert(src),
        };
        requester != src
    }

    /// Like `observe` but never records (drops must not define a connection's direction).
    pub fn peek(&self, flow: &FlowKey) -> Option<bool> {
        let (key, src) = Self::key(flow);
        self.requesters.get(&key).map(|requester| *requester != src)
    }
}
