//! `drop`: `hubble_drop_total{<context>, reason, protocol}`, DROPPED flows.

use std::sync::Arc;

use sightline_proto::flow::Verdict;

use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::names;
use crate::metrics::series::{Collect, CounterFamily, LabelKey};
use crate::metrics::shortcut::{Packed, Shortcut, l4_kind, l7_kind};

#[derive(Debug)]
pub(super) struct DropHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    drops: CounterFamily,
}

impl DropHandler {
    pub(super) fn new(context: ContextOptions, max_series: usize) -> Self {
        Self {
            object_labels: context.object_labels(),
            drops: CounterFamily::new(
                "hubble_drop",
                "Number of drops",
                labels(&[], &context, &["reason", "protocol"]),
                max_series,
            ),
            context,
        }
    }
}

impl DropHandler {
    /// The reason and the protocol (from the event type and the L4/L7 kind) besides the context.
    fn shortcut<'a>(&self, flow: &'a FlowRecord) -> Option<Shortcut<'a>> {
        let sides = self.context.sides(flow)?;
        let own = Packed::default()
            .push(flow.drop_reason_desc, 16)?
            .push(names::event_type(flow).0, 8)?
            .push(l4_kind(flow), 3)?
            .push(l7_kind(flow), 2)?;
        Some(Shortcut::new(own, sides))
    }
}

impl Handler for DropHandler {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        if flow.verdict != Verdict::Dropped as i32 {
            return;
        }
        let shortcut = self.shortcut(flow);
        let context = &self.context;
        self.drops.inc_via(shortcut, key, |key| {
            context.write_values(flow, false, key);
            key.push(&names::drop_reason(flow.drop_reason_desc));
            key.push(names::flow_protocol(flow));
        });
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        vec![self.drops.collector()]
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.drops.remove_where(doomed(&self.object_labels, gone))
    }

    fn shortcut_count(&self) -> usize {
        self.drops.shortcut_count()
    }
}
