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
        let rcode = match (dropped, is_reply) {
            (true, _) => "Policy denied",
            (false, false) => "",
            (false, true) => names::dns_rcode(dns.rcode),
        };
        key.clear();
        self.context.write_values(flow, false, key);
        let context_end = key.len();
        let context_values = key.value_count();
        key.push(rcode);
        push_joined(key, &dns.qtypes);
        key.begin();
        let mut digits = [0; 10];
        key.extend(format_u32(
            &mut digits,
            u32::try_from(dns.ips.len()).unwrap_or(u32::MAX),
        ));
        if self.include_query {
            key.push(&dns.query);
        }
        if dropped || !is_reply {
            self.queries.inc(key);
            return;
        }
        self.responses.inc(key);
        for record_type in &dns.rrtypes {
            key.truncate_to(context_end, context_values);
            key.push(record_type);
            push_joined(key, &dns.qtypes);
            if self.include_query {
                key.push(&dns.query);
            }
            self.response_types.inc(key);
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
}
