//! `tcp`: `hubble_tcp_flags_total{flag, family, <context>}` for forwarded TCP
//! packets: one count each for FIN, SYN or SYN-ACK, and RST.

use std::sync::Arc;

use sightline_proto::flow::{Verdict, layer4};

use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::names;
use crate::metrics::series::{Collect, CounterFamily, LabelKey};
use crate::metrics::shortcut::{Packed, Shortcut};

/// The `flag` label values, indexed by the constants below.
const FLAGS: [&str; 4] = ["FIN", "SYN", "SYN-ACK", "RST"];
const FIN: usize = 0;
const SYN: usize = 1;
const SYN_ACK: usize = 2;
const RST: usize = 3;

#[derive(Debug)]
pub(super) struct TcpHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    flags: CounterFamily,
}

impl TcpHandler {
    pub(super) fn new(context: ContextOptions, max_series: usize) -> Self {
        Self {
            object_labels: context.object_labels(),
            flags: CounterFamily::new(
                "hubble_tcp_flags",
                "TCP flag occurrences",
                labels(&["flag", "family"], &context, &[]),
                max_series,
            ),
            context,
        }
    }

    fn count(&mut self, flag: usize, flow: &FlowRecord, key: &mut LabelKey) {
        let version = flow.ip_version();
        let shortcut = self.context.sides(flow).and_then(|sides| {
            let own = Packed::default().push(flag, 2)?.push(version, 8)?;
            Some(Shortcut::new(own, sides))
        });
        let context = &self.context;
        self.flags.inc_via(shortcut, key, |key| {
            key.push(FLAGS[flag]);
            key.push(&names::ip_version(version));
            context.write_values(flow, false, key);
        });
    }
}

impl Handler for TcpHandler {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        let forwarded = flow.verdict == Verdict::Forwarded as i32 || flow.verdict == Verdict::Redirected as i32;
        let has_ip = flow.flow.ip.is_some() || flow.addresses.is_some();
        let Some(layer4::Protocol::Tcp(tcp)) = flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) else {
            return;
        };
        let Some(flags) = tcp.flags.as_ref() else { return };
        if !forwarded || !has_ip {
            return;
        }
        if flags.fin {
            self.count(FIN, flow, key);
        }
        if flags.syn {
            self.count(if flags.ack { SYN_ACK } else { SYN }, flow, key);
        }
        if flags.rst {
            self.count(RST, flow, key);
        }
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        vec![self.flags.collector()]
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.flags.remove_where(doomed(&self.object_labels, gone))
    }

    fn shortcut_count(&self) -> usize {
        self.flags.shortcut_count()
    }
}
