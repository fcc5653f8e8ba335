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
use crate::metrics::series::{Collect, CounterFamily, HistogramFamily, LabelKey};

#[derive(Debug)]
pub struct HttpHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    v2: bool,
    requests: CounterFamily,
    /// v1 only.
    responses: Option<CounterFamily>,
    duration: HistogramFamily,
}

/// Who observed the exchange: the client's side (egress) or the server's (ingress).
pub(super) fn reporter(flow: &FlowRecord) -> &'static str {
    match TrafficDirection::try_from(flow.traffic_direction) {
        Ok(TrafficDirection::Egress) => "client",
        Ok(TrafficDirection::Ingress) => "server",
        _ => "unknown",
    }
}

impl HttpHandler {
    pub fn new(context: ContextOptions, max_series: usize, v2: bool) -> Self {
        let request_labels: &[&'static str] = if v2 {
            &["method", "protocol", "status", "reporter"]
        } else {
            &["method", "protocol", "reporter"]
        };
        Self {
            object_labels: context.object_labels(),
            requests: CounterFamily::new(
                "hubble_http_requests",
                "Count of HTTP requests",
                labels(&[], &context, request_labels),
                max_series,
            ),
            responses: (!v2).then(|| {
                CounterFamily::new(
                    "hubble_http_responses",
                    "Count of HTTP responses",
                    labels(&[], &context, &["method", "protocol", "status", "reporter"]),
                    max_series,
                )
            }),
            duration: HistogramFamily::new(
                "hubble_http_request_duration_seconds",
                "Quantiles of HTTP request duration in seconds",
                labels(&[], &context, &["method", "reporter"]),
                max_series,
            ),
            context,
            v2,
        }
    }
}

impl Handler for HttpHandler {
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
        key.clear();
        self.context.write_values(flow, self.v2, key);
        let (context_end, context_values) = (key.len(), key.value_count());
        key.push(&http.method);
        if is_request {
            key.push(&http.protocol);
            key.push(reporter);
            self.requests.inc(key);
            return;
        }
        key.push(&http.protocol);
        key.begin();
        let mut digits = [0; 10];
        key.extend(format_u32(&mut digits, http.code));
        key.push(reporter);
        match &mut self.responses {
            Some(responses) => responses.inc(key),
            None => self.requests.inc(key),
        }
        key.truncate_to(context_end, context_values);
        key.push(&http.method);
        key.push(reporter);
        self.duration.observe(key, l7.latency_ns as f64 / 1e9);
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
