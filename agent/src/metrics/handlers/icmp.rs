//! `icmp`: `hubble_icmp_total{family, type, <context>}` for ICMP flows.
//!
//! Hubble labels ICMPv6 messages with family "IPv4" too (its handler writes the
//! same literal for both); dashboards written against it expect that, so we keep it.

use std::sync::Arc;

use sightline_proto::flow::layer4;

use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::names;
use crate::metrics::series::{Collect, CounterFamily, LabelKey};
use crate::metrics::shortcut::{Packed, Shortcut};

#[derive(Debug)]
pub(super) struct IcmpHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    messages: CounterFamily,
}

impl IcmpHandler {
    pub(super) fn new(context: ContextOptions, max_series: usize) -> Self {
        Self {
            object_labels: context.object_labels(),
            messages: CounterFamily::new(
                "hubble_icmp",
                "Number of ICMP messages",
                labels(&["family", "type"], &context, &[]),
                max_series,
            ),
            context,
        }
    }
}

impl Handler for IcmpHandler {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        let (v6, kind, code) = match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
            Some(layer4::Protocol::IcmPv4(icmp)) => (false, icmp.r#type, icmp.code),
            Some(layer4::Protocol::IcmPv6(icmp)) => (true, icmp.r#type, icmp.code),
            _ => return,
        };
        // The type name is formatted (an allocation) only for a series not reached before.
        let shortcut = self.context.sides(flow).and_then(|sides| {
            let own = Packed::default().push(v6, 1)?.push(kind, 8)?.push(code, 8)?;
            Some(Shortcut::new(own, sides))
        });
        let context = &self.context;
        self.messages.inc_via(shortcut, key, |key| {
            key.push("IPv4");
            key.push(&names::icmp_type_code(v6, kind, code));
            context.write_values(flow, false, key);
        });
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        vec![self.messages.collector()]
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.messages.remove_where(doomed(&self.object_labels, gone))
    }

    fn shortcut_count(&self) -> usize {
        self.messages.shortcut_count()
    }
}
