//! Series that carry Hubble's trace exemplars (`http`/`httpV2` with
//! `exemplars=true`): each count or observation of a flow with a trace id keeps
//! that id as the series' (or the bucket's) latest exemplar, labelled `traceID`
//! as Hubble labels it. Only the OpenMetrics exposition shows exemplars; the
//! Prometheus text format leaves them out.
//!
//! These cells take a lock per update (prometheus-client keeps the value and the
//! exemplar together), which is why plain series use the cells in `series.rs`.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::exemplar::{CounterWithExemplar, HistogramWithExemplars};

use super::series::{Cell, CounterCell, HistogramCell};
use crate::flow_record::FlowRecord;

/// Hubble's exemplar label name (`prometheus.Labels{"traceID": ...}`).
const TRACE_LABEL: &str = "traceID";

type TraceLabels = [(&'static str, String); 1];

/// The flow's trace id, when it has one.
pub(crate) fn trace_id(flow: &FlowRecord) -> Option<&str> {
    flow.trace_context
        .as_ref()
        .and_then(|context| context.parent.as_ref())
        .map(|parent| parent.trace_id.as_str())
        .filter(|id| !id.is_empty())
}

fn labels(trace_id: Option<&str>) -> Option<TraceLabels> {
    trace_id.map(|id| [(TRACE_LABEL, id.to_owned())])
}

/// A series that counts, with or without an exemplar.
pub(crate) trait CountCell: Cell + std::fmt::Debug {
    fn count(&self, trace_id: Option<&str>);
}

/// A series that observes values, with or without an exemplar.
pub(crate) trait ObserveCell: Cell + std::fmt::Debug {
    fn observe_value(&self, bounds: &[f64], value: f64, trace_id: Option<&str>);
}

impl CountCell for CounterCell {
    fn count(&self, _: Option<&str>) {
        self.bump();
    }
}

impl ObserveCell for HistogramCell {
    fn observe_value(&self, bounds: &[f64], value: f64, _: Option<&str>) {
        self.observe(bounds, value);
    }
}

#[derive(Debug, Default)]
pub(crate) struct ExemplarCounterCell(CounterWithExemplar<TraceLabels>);

impl Cell for ExemplarCounterCell {
    const TYPE: MetricType = MetricType::Counter;

    fn new_cell(_: &'static [f64]) -> Self {
        Self::default()
    }

    fn encode(&self, _: &'static [f64], encoder: MetricEncoder<'_>) -> std::fmt::Result {
        self.0.encode(encoder)
    }
}

impl CountCell for ExemplarCounterCell {
    fn count(&self, trace_id: Option<&str>) {
        match trace_id {
            // Like Go's client, an exemplar carries the time it was taken.
            Some(_) => {
                self.0.inc_by(1, labels(trace_id), Some(SystemTime::now()));
            }
            // A count without a trace id keeps the last exemplar, as in Go's client.
            None => {
                self.0.inner().fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct ExemplarHistogramCell(HistogramWithExemplars<TraceLabels>);

impl Cell for ExemplarHistogramCell {
    const TYPE: MetricType = MetricType::Histogram;

    fn new_cell(bounds: &'static [f64]) -> Self {
        Self(HistogramWithExemplars::new(bounds.iter().copied()))
    }

    fn encode(&self, _: &'static [f64], encoder: MetricEncoder<'_>) -> std::fmt::Result {
        self.0.encode(encoder)
    }
}

impl ObserveCell for ExemplarHistogramCell {
    fn observe_value(&self, _: &[f64], value: f64, trace_id: Option<&str>) {
        let now = trace_id.map(|_| SystemTime::now());
        self.0.observe(value, labels(trace_id), now);
    }
}
