//! `kafka` (v1.19): `hubble_kafka_requests_total{<context>, topic, api_key, error_code, reporter}`
//! and `hubble_kafka_request_duration_seconds{<context>, topic, api_key, reporter}` per request record.

use std::sync::Arc;

use sightline_proto::flow::{L7FlowType, layer7};

use super::http::reporter;
use super::{Handler, doomed, labels};
use crate::flow_record::FlowRecord;
use crate::metrics::context::ContextOptions;
use crate::metrics::series::{Collect, CounterFamily, HistogramFamily, LabelKey};

#[derive(Debug)]
pub(super) struct KafkaHandler {
    context: ContextOptions,
    object_labels: Vec<&'static str>,
    requests: CounterFamily,
    duration: HistogramFamily,
}

impl KafkaHandler {
    pub(super) fn new(context: ContextOptions, max_series: usize) -> Self {
        Self {
            object_labels: context.object_labels(),
            requests: CounterFamily::new(
                "hubble_kafka_requests",
                "Count of Kafka requests",
                labels(&[], &context, &["topic", "api_key", "error_code", "reporter"]),
                max_series,
            ),
            duration: HistogramFamily::new(
                "hubble_kafka_request_duration_seconds",
                "Quantiles of HTTP request duration in seconds",
                labels(&[], &context, &["topic", "api_key", "reporter"]),
                max_series,
            ),
            context,
        }
    }
}

// The proto marks Kafka deprecated; v1.19's handlers still read it.
#[allow(deprecated)]
impl Handler for KafkaHandler {
    fn process(&mut self, flow: &FlowRecord, key: &mut LabelKey) {
        let Some(l7) = flow.l7.as_deref() else { return };
        let Some(layer7::Record::Kafka(kafka)) = l7.record.as_ref() else {
            return;
        };
        if l7.r#type != L7FlowType::Request as i32 {
            return;
        }
        let reporter = reporter(flow);
        key.clear();
        self.context.write_values(flow, false, key);
        let (context_end, context_values) = (key.len(), key.value_count());
        key.push(&kafka.topic);
        key.push(&kafka.api_key);
        key.push(&kafka.error_code.to_string());
        key.push(reporter);
        self.requests.inc(key);
        key.truncate_to(context_end, context_values);
        key.push(&kafka.topic);
        key.push(&kafka.api_key);
        key.push(reporter);
        self.duration.observe(key, l7.latency_ns as f64 / 1e9);
    }

    fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        vec![self.requests.collector(), self.duration.collector()]
    }

    fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.requests.remove_where(doomed(&self.object_labels, gone))
            + self.duration.remove_where(doomed(&self.object_labels, gone))
    }
}
