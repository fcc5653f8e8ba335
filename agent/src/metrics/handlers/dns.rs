//! `dns`: queries, responses and response record types of DNS (L7) flows.
//! `hubble_dns_queries_total` / `hubble_dns_responses_total{<context>, rcode, qtypes, ips_returned[, query]}`,
//! `hubble_dns_response_types_total{<context>, type, qtypes[, query]}`.

use std::sync::Arc;

use sightline_proto::flow::{Verdict, layer7};

use super::port_distribution::format_u32;
use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::names;
use crate::metrics::series::{Collect, CounterFamily, LabelKey};
use crate::metrics::shortcut::{Packed, Shortcut};

#[derive(Debug)]
pub(super) struct DnsHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    include_query: bool,
    ignore_aaaa: bool,
    queries: CounterFamily,
    responses: CounterFamily,
    response_types: CounterFamily,
}

impl DnsHandler {
    pub(super) fn new(context: ContextOptions, max_series: usize, include_query: bool, ignore_aaaa: bool) -> Self {
        let query: &[&'static str] = if include_query { &["query"] } else { &[] };
        let with_query = |base: &[&'static str]| [base, query].concat();
        let common = with_query(&["rcode", "qtypes", "ips_returned"]);
        Self {
            object_labels: context.object_labels(),
            queries: CounterFamily::new(
                "hubble_dns_queries",
                "Number of DNS queries observed",
                labels(&[], &context, &common),
                max_series,
            ),
            responses: CounterFamily::new(
                "hubble_dns_responses",
                "Number of DNS queries observed",
                labels(&[], &context, &common),
                max_series,
            ),
            response_types: CounterFamily::new(
                "hubble_dns_response_types",
                "Number of DNS queries observed",
                labels(&[], &context, &with_query(&["type", "qtypes"])),
                max_series,
            ),
            context,
            include_query,
            ignore_aaaa,
        }
    }
}

fn push_joined(key: &mut LabelKey, parts: &[String]) {
    key.begin();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.extend(",");
        }
        key.extend(part);
    }
}

/// Record types common enough to stand for a number in a series shortcut; a flow
/// naming another one takes the label path.
const KNOWN_TYPES: [&str; 15] = [
    "A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "NS", "SOA", "ANY", "HTTPS", "SVCB", "CAA", "DS", "DNSKEY",
];

/// A known record type as a number from 1; 0 is never returned.
fn type_code(name: &str) -> Option<u64> {
    KNOWN_TYPES
        .iter()
        .position(|known| *known == name)
        .map(|i| i as u64 + 1)
}

/// The `qtypes` label as a number: 0 for none, a known type's code for one.
fn qtypes_code(qtypes: &[String]) -> Option<u64> {
    match qtypes {
        [] => Some(0),
        [one] => type_code(one),
        _ => None,
    }
}

impl Handler for DnsHandler {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        let Some(layer7::Record::Dns(dns)) = flow.l7.as_ref().and_then(|l7| l7.record.as_ref()) else {
            return;
        };
        if self.ignore_aaaa && dns.qtypes.len() == 1 && dns.qtypes[0] == "AAAA" {
            return;
        }
        let is_reply = names::is_reply(flow) == Some(true);
        let dropped = flow.verdict == Verdict::Dropped as i32;
        let (rcode, state, rcode_number) = match (dropped, is_reply) {
            (true, _) => ("Policy denied", 0u8, 0),
            (false, false) => ("", 1, 0),
            (false, true) => (names::dns_rcode(dns.rcode), 2, dns.rcode),
        };
        let ips = u32::try_from(dns.ips.len()).unwrap_or(u32::MAX);
        // Every label but the context's comes from these numbers, unless the query
        // name is a label (a string no number stands for).
        let sides = if self.include_query {
            None
        } else {
            self.context.sides(flow)
        };
        let qtypes = qtypes_code(&dns.qtypes);
        let shortcut = sides.zip(qtypes).and_then(|(sides, qtypes)| {
            let own = Packed::default()
                .push(state, 2)?
                .push(rcode_number, 16)?
                .push(qtypes, 5)?
                .push(ips, 16)?;
            Some(Shortcut::new(own, sides))
        });
        let context = &self.context;
        let include_query = self.include_query;
        let common = |key: &mut LabelKey| {
            context.write_values(flow, false, key);
            key.push(rcode);
            push_joined(key, &dns.qtypes);
            key.begin();
            let mut digits = [0; 10];
            key.extend(format_u32(&mut digits, ips));
            if include_query {
                key.push(&dns.query);
            }
        };
        if dropped || !is_reply {
            self.queries.inc_via(shortcut, key, common);
            return;
        }
        self.responses.inc_via(shortcut, key, common);
        for record_type in &dns.rrtypes {
            let shortcut = sides
                .zip(qtypes)
                .zip(type_code(record_type))
                .and_then(|((sides, qtypes), kind)| {
                    let own = Packed::default().push(kind, 5)?.push(qtypes, 5)?;
                    Some(Shortcut::new(own, sides))
                });
            self.response_types.inc_via(shortcut, key, |key| {
                context.write_values(flow, false, key);
                key.push(record_type);
                push_joined(key, &dns.qtypes);
                if include_query {
                    key.push(&dns.query);
                }
            });
        }
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        vec![
            self.queries.collector(),
            self.responses.collector(),
            self.response_types.collector(),
        ]
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.queries.remove_where(doomed(&self.object_labels, gone))
            + self.responses.remove_where(doomed(&self.object_labels, gone))
            + self.response_types.remove_where(doomed(&self.object_labels, gone))
    }

    fn shortcut_count(&self) -> usize {
        self.queries.shortcut_count() + self.responses.shortcut_count() + self.response_types.shortcut_count()
    }
}
