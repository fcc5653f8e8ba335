//! `http` and `httpV2`: HTTP (L7) requests, responses and latency.
//!
//! v1: `hubble_http_requests_total{<context>, method, protocol, reporter}` per
//! request, `hubble_http_responses_total{<context>, method, protocol, status, reporter}`
//! and `hubble_http_request_duration_seconds{<context>, method, reporter}` per response.
//! v2: responses only, `hubble_http_requests_total{<context>, method, protocol, status, reporter}`
//! plus the histogram, with source and destination swapped: a response travels
//! from server to client, and the series should name the client as the source.

use std::sync::Arc;

use sightline_proto::flow::{L7FlowType, TrafficDirection, layer7};

use super::port_distribution::format_u32;
use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::exemplar::{CountCell, ObserveCell, trace_id};
use crate::metrics::series::{Collect, Family, LabelKey};

/// With `exemplars=true` the cells keep trace exemplars (see
/// [`crate::metrics::exemplar`]); otherwise they are the plain ones.
#[derive(Debug)]
pub(super) struct HttpHandler<Count, Observe> {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    v2: bool,
    /// Whether counts and observations carry the flow's trace id.
    exemplars: bool,
    requests: Family<Count>,
    /// v1 only.
    responses: Option<Family<Count>>,
    duration: Family<Observe>,
}

/// Who observed the exchange: the client's side (egress) or the server's (ingress).
pub(super) fn reporter(flow: &FlowRecord) -> &'static str {
    match TrafficDirection::try_from(flow.traffic_direction) {
        Ok(TrafficDirection::Egress) => "client",
        Ok(TrafficDirection::Ingress) => "server",
        _ => "unknown",
    }
}

impl<Count: CountCell, Observe: ObserveCell> HttpHandler<Count, Observe> {
    pub(super) fn new(context: ContextOptions, max_series: usize, v2: bool, exemplars: bool) -> Self {
        let request_labels: &[&'static str] = if v2 {
            &["method", "protocol", "status", "reporter"]
        } else {
            &["method", "protocol", "reporter"]
        };
        Self {
            object_labels: context.object_labels(),
            requests: Family::new(
                "hubble_http_requests",
                "Count of HTTP requests",
                labels(&[], &context, request_labels),
                max_series,
            ),
            responses: (!v2).then(|| {
                Family::new(
                    "hubble_http_responses",
                    "Count of HTTP responses",
                    labels(&[], &context, &["method", "protocol", "status", "reporter"]),
                    max_series,
                )
            }),
            duration: Family::new(
                "hubble_http_request_duration_seconds",
                "Quantiles of HTTP request duration in seconds",
                labels(&[], &context, &["method", "reporter"]),
                max_series,
            ),
            context,
            v2,
            exemplars,
        }
    }
}

impl<Count: CountCell, Observe: ObserveCell> Handler for HttpHandler<Count, Observe> {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        let Some(l7) = flow.l7.as_deref() else { return };
        let Some(layer7::Record::Http(http)) = l7.record.as_ref() else {
            return;
        };
        let is_request = l7.r#type == L7FlowType::Request as i32;
        let is_response = l7.r#type == L7FlowType::Response as i32;
        if !(is_response || (is_request && !self.v2)) {
            return;
        }
        let reporter = reporter(flow);
        let trace_id = if self.exemplars { trace_id(flow) } else { None };
        key.clear();
        self.context.write_values(flow, self.v2, key);
        let (context_end, context_values) = (key.len(), key.value_count());
        key.push(&http.method);
        if is_request {
            key.push(&http.protocol);
            key.push(reporter);
            self.requests.update(key, |cell| cell.count(trace_id));
            return;
        }
        key.push(&http.protocol);
        key.begin();
        let mut digits = [0; 10];
        key.extend(format_u32(&mut digits, http.code));
        key.push(reporter);
        let counted = self.responses.as_mut().unwrap_or(&mut self.requests);
        counted.update(key, |cell| cell.count(trace_id));
        key.truncate_to(context_end, context_values);
        key.push(&http.method);
        key.push(reporter);
        let bounds = self.duration.buckets();
        let seconds = l7.latency_ns as f64 / 1e9;
        self.duration
            .update(key, |cell| cell.observe_value(bounds, seconds, trace_id));
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        let mut all = vec![self.requests.collector()];
        all.extend(self.responses.as_ref().map(|r| r.collector()));
        all.push(self.duration.collector());
        all
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        let mut removed = self.requests.remove_where(doomed(&self.object_labels, gone));
        if let Some(responses) = &mut self.responses {
            removed += responses.remove_where(doomed(&self.object_labels, gone));
        }
        removed + self.duration.remove_where(doomed(&self.object_labels, gone))
    }
}
