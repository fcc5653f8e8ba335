//! `flows-to-world`: `hubble_flows_to_world_total{protocol, verdict[, port], <context>}`
//! for flows whose destination is outside the cluster (`reserved:world*`).

use std::sync::Arc;

use sightline_proto::flow::{DropReason, Verdict, layer4};

use super::port_distribution::format_u32;
use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::names;
use crate::metrics::series::{Collect, CounterFamily, LabelKey};

const WORLD_LABELS: [&str; 3] = ["reserved:world", "reserved:world-ipv4", "reserved:world-ipv6"];

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Options {
    /// Count every drop, not only policy denials.
    pub any_drop: bool,
    /// Add the destination port label.
    pub port: bool,
    /// Count only TCP SYNs that are not replies.
    pub syn_only: bool,
}

#[derive(Debug)]
pub(super) struct FlowsToWorldHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    options: Options,
    flows: CounterFamily,
}

impl FlowsToWorldHandler {
    pub(super) fn new(context: ContextOptions, max_series: usize, options: Options) -> Self {
        let before: &[&'static str] = if options.port {
            &["protocol", "verdict", "port"]
        } else {
            &["protocol", "verdict"]
        };
        Self {
            object_labels: context.object_labels(),
            flows: CounterFamily::new(
                "hubble_flows_to_world",
                "Total number of flows to reserved:world",
                labels(before, &context, &[]),
                max_series,
            ),
            context,
            options,
        }
    }
}

impl Handler for FlowsToWorldHandler {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        let to_world = flow
            .destination()
            .is_some_and(|d| d.labels.iter().any(|l| WORLD_LABELS.contains(&l.as_str())));
        let Some(protocol) = flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) else {
            return;
        };
        if !to_world || flow.event_type.is_none() {
            return;
        }
        let dropped = flow.verdict == Verdict::Dropped as i32;
        if dropped && !self.options.any_drop && flow.drop_reason_desc != DropReason::PolicyDenied as i32 {
            return;
        }
        let is_reply = names::is_reply(flow) == Some(true);
        // Forwarded replies would count the ephemeral ports of the world's answers.
        if !dropped && is_reply {
            return;
        }
        if self.options.syn_only {
            let syn = matches!(protocol, layer4::Protocol::Tcp(tcp) if tcp.flags.as_ref().is_some_and(|f| f.syn));
            if !syn || is_reply {
                return;
            }
        }
        key.clear();
        key.push(names::flow_protocol(flow));
        key.push(&names::verdict(flow.verdict));
        if self.options.port {
            key.begin();
            let port = match protocol {
                layer4::Protocol::Tcp(l4) => Some(l4.destination_port),
                layer4::Protocol::Udp(l4) => Some(l4.destination_port),
                layer4::Protocol::Sctp(l4) => Some(l4.destination_port),
                _ => None,
            };
            if let Some(port) = port {
                let mut digits = [0; 10];
                key.extend(format_u32(&mut digits, port));
            }
        }
        self.context.write_values(flow, false, key);
        self.flows.inc(key);
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        vec![self.flows.collector()]
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.flows.remove_where(doomed(&self.object_labels, gone))
    }
}
