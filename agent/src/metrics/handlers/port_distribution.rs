//! `port-distribution`: `hubble_port_distribution_total{protocol, port, <context>}`
//! for forwarded packets known not to be replies.

use std::sync::Arc;

use sightline_proto::flow::{Verdict, layer4};

use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::series::{Collect, CounterFamily, LabelKey};
use crate::metrics::shortcut::{Packed, Shortcut, l4_kind};

#[derive(Debug)]
pub(super) struct PortDistributionHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    ports: CounterFamily,
}

impl PortDistributionHandler {
    pub(super) fn new(context: ContextOptions, max_series: usize) -> Self {
        Self {
            object_labels: context.object_labels(),
            ports: CounterFamily::new(
                "hubble_port_distribution",
                "Numbers of packets distributed by destination port",
                labels(&["protocol", "port"], &context, &[]),
                max_series,
            ),
            context,
        }
    }
}

impl Handler for PortDistributionHandler {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        let forwarded = flow.verdict == Verdict::Forwarded as i32 || flow.verdict == Verdict::Redirected as i32;
        // A flow not known to be a request (is_reply unset) would count ephemeral ports.
        if !forwarded || crate::metrics::names::is_reply(flow) != Some(false) {
            return;
        }
        let Some(protocol) = flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) else {
            return;
        };
        let (name, port) = match protocol {
            layer4::Protocol::Tcp(l4) => ("TCP", l4.destination_port),
            layer4::Protocol::Udp(l4) => ("UDP", l4.destination_port),
            layer4::Protocol::Sctp(l4) => ("SCTP", l4.destination_port),
            layer4::Protocol::IcmPv4(_) => ("ICMPv4", 0),
            layer4::Protocol::IcmPv6(_) => ("ICMPv6", 0),
            layer4::Protocol::Vrrp(_) => ("VRRP", 0),
            layer4::Protocol::Igmp(_) => ("IGMP", 0),
        };
        let shortcut = self.context.sides(flow).and_then(|sides| {
            let own = Packed::default().push(l4_kind(flow), 3)?.push(port, 32)?;
            Some(Shortcut::new(own, sides))
        });
        let context = &self.context;
        self.ports.inc_via(shortcut, key, |key| {
            key.push(name);
            key.begin();
            let mut digits = itoa_buffer();
            key.extend(format_u32(&mut digits, port));
            context.write_values(flow, false, key);
        });
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        vec![self.ports.collector()]
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.ports.remove_where(doomed(&self.object_labels, gone))
    }

    fn shortcut_count(&self) -> usize {
        self.ports.shortcut_count()
    }
}

fn itoa_buffer() -> [u8; 10] {
    [0; 10]
}

/// Decimal digits of `value` without allocating (this runs for every flow).
pub(super) fn format_u32(buffer: &mut [u8; 10], mut value: u32) -> &str {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buffer[start..]).unwrap_or("0")
}
