//! `drop`: `hubble_drop_total{<context>, reason, protocol}`, DROPPED flows.

use std::sync::Arc;

use sightline_proto::flow::Verdict;

use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::names;
use crate::metrics::series::{Collect, CounterFamily, LabelKey};

#[derive(Debug)]
pub struct DropHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    drops: CounterFamily,
}

impl DropHandler {
    pub fn new(context: ContextOptions, max_series: usize) -> Self {
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

impl Handler for DropHandler {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        if flow.verdict != Verdict::Dropped as i32 {
            return;
        }
        key.clear();
        self.context.write_values(flow, false, key);
        key.push(&names::drop_reason(flow.drop_reason_desc));
        key.push(names::flow_protocol(flow));
        self.drops.inc(key);
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        vec![self.drops.collector()]
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.drops.remove_where(doomed(&self.object_labels, gone))
    }
}
