//! `flow`: `hubble_flows_processed_total{protocol, type, subtype, verdict, <context>}`, every flow.

use std::sync::Arc;

use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::names::{self, event_type};
use crate::metrics::series::{Collect, CounterFamily, LabelKey};
use crate::metrics::shortcut::{Packed, Shortcut, l4_kind, l7_kind};
use sightline_proto::flow::layer7;

#[derive(Debug)]
pub(super) struct FlowHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    flows: CounterFamily,
}

impl FlowHandler {
    pub(super) fn new(context: ContextOptions, max_series: usize) -> Self {
        let names = labels(&["protocol", "type", "subtype", "verdict"], &context, &[]);
        Self {
            object_labels: context.object_labels(),
            flows: CounterFamily::new(
                "hubble_flows_processed",
                "Total number of flows processed",
                names,
                max_series,
            ),
            context,
        }
    }
}

// The proto marks Kafka deprecated; v1.19's handlers still read it.
#[allow(deprecated)]
fn type_and_subtype(flow: &FlowRecord, key: &mut LabelKey) {
    let (kind, sub_type) = event_type(flow);
    let (name, subtype): (&str, &str) = match kind {
        names::MESSAGE_TYPE_ACCESS_LOG => (
            "L7",
            match flow.l7.as_ref().and_then(|l7| l7.record.as_ref()) {
                Some(layer7::Record::Dns(_)) => "DNS",
                Some(layer7::Record::Http(_)) => "HTTP",
                Some(layer7::Record::Kafka(_)) => "Kafka",
                None => "",
            },
        ),
        names::MESSAGE_TYPE_DROP => ("Drop", ""),
        names::MESSAGE_TYPE_CAPTURE => ("Capture", ""),
        names::MESSAGE_TYPE_TRACE => ("Trace", names::trace_observation_point(sub_type)),
        names::MESSAGE_TYPE_POLICY_VERDICT => ("PolicyVerdict", ""),
        other => {
            key.push("Unknown");
            key.push(&other.to_string());
            return;
        }
    };
    key.push(name);
    key.push(subtype);
}

impl FlowHandler {
    /// Every label but the context's comes from these numbers.
    fn shortcut<'a>(&self, flow: &'a FlowRecord) -> Option<Shortcut<'a>> {
        let sides = self.context.sides(flow)?;
        let (kind, sub_type) = event_type(flow);
        let own = Packed::default()
            .push(kind, 8)?
            .push(sub_type, 8)?
            .push(l4_kind(flow), 3)?
            .push(l7_kind(flow), 2)?
            .push(flow.verdict, 8)?;
        Some(Shortcut::new(own, sides))
    }
}

impl Handler for FlowHandler {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        let shortcut = self.shortcut(flow);
        let context = &self.context;
        self.flows.inc_via(shortcut, key, |key| {
            key.push(names::flow_protocol(flow));
            type_and_subtype(flow, key);
            key.push(&names::verdict(flow.verdict));
            context.write_values(flow, false, key);
        });
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        vec![self.flows.collector()]
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.flows.remove_where(doomed(&self.object_labels, gone))
    }

    fn shortcut_count(&self) -> usize {
        self.flows.shortcut_count()
    }
}
