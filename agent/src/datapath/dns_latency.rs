//! Matches DNS answers to their queries by (id, 5-tuple, interface) to give latencies.

use std::collections::HashMap;

use sightline_bpf_common::FlowKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct QueryKey {
    id: u16,
    flow: FlowKey,
}

/// Bounded: when full, queries older than `STALE_NS` are forgotten (and if none are, all).
#[derive(Debug)]
pub(super) struct DnsLatency {
    pending: HashMap<QueryKey, u64>,
    capacity: usize,
}

const STALE_NS: u64 = 30_000_000_000;

impl DnsLatency {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            pending: HashMap::new(),
            capacity,
        }
    }

    /// Keyed by the query's direction; `hook` is cleared so a query leaving a pod at TC
    /// ingress matches the answer entering it at TC egress of the same interface.
    fn key(flow: &FlowKey, id: u16) -> QueryKey {
        let mut flow = *flow;
        flow.hook = 0;
        QueryKey { id, flow }
    }

    pub(super) fn ask(&mut self, query: &FlowKey, id: u16, at_ns: u64) {
        if self.pending.len() >= self.capacity {
            self.pending.retain(|_, t| at_ns.saturating_sub(*t) < STALE_NS);
            if self.pending.len() >= self.capacity {
                self.pending.clear();
            }
        }
        self.pending.insert(Self::key(query, id), at_ns);
    }

    /// The latency of the query this answer answers, if it was seen.
    pub(super) fn answer(&mut self, answer: &FlowKey, id: u16, at_ns: u64) -> Option<u64> {
        let mut query = *answer;
        std::mem::swap(&mut query.src_addr, &mut query.dst_addr);
        std::mem::swap(&mut query.src_port, &mut query.dst_port);
        let asked = self.pending.remove(&Self::key(&query, id))?;
        Some(at_ns.saturating_sub(asked))
    }
}
