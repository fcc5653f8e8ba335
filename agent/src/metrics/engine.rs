//! The configured handlers and the per-flow loop over them.

use std::sync::Arc;

use super::MetricsError;
use super::handlers::{self, Handler};
use super::options::MetricSpec;
use super::series::{Collect, LabelKey};
use crate::flow_record::FlowRecord;
use crate::observer::filter::FilterSet;

/// One handler with the include/exclude filters of its dynamic configuration.
#[derive(Debug)]
struct Configured {
    spec: MetricSpec,
    /// What besides `spec` must be equal for a reload to keep the series.
    fingerprint: String,
    filters: Option<FilterSet>,
    handler: Box<dyn Handler>,
}

/// The handlers flows are counted by. Owned by the pipeline thread.
#[derive(Debug, Default)]
pub struct FlowMetrics {
    handlers: Vec<Configured>,
    key: LabelKey,
}

impl FlowMetrics {
    /// Handlers for `specs`, with Hubble's conflict rule (http and httpV2 both
    /// register `hubble_http_requests_total`).
    pub fn new(specs: &[MetricSpec], max_series: usize) -> Result<Self, MetricsError> {
        Self::with_filters(
            specs.iter().map(|spec| (spec.clone(), None, String::new())).collect(),
            max_series,
        )
    }

    /// Handlers with include/exclude filters; the string identifies the filters.
    pub fn with_filters(
        specs: Vec<(MetricSpec, Option<FilterSet>, String)>,
        max_series: usize,
    ) -> Result<Self, MetricsError> {
        let names: Vec<&str> = specs.iter().map(|(spec, _, _)| spec.name.as_str()).collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(MetricsError::Duplicate { name: name.to_string() });
            }
        }
        if names.contains(&"http") && names.contains(&"httpV2") {
            return Err(MetricsError::Conflict {
                first: "http".into(),
                second: "httpV2".into(),
                metric: "hubble_http_requests_total".into(),
            });
        }
        let mut handlers = Vec::with_capacity(specs.len());
        for (spec, filters, fingerprint) in specs {
            let handler = handlers::build(&spec, max_series)?;
            handlers.push(Configured {
                spec,
                fingerprint,
                filters,
                handler,
            });
        }
        Ok(Self {
            handlers,
            key: LabelKey::default(),
        })
    }

    /// No handler configured: the sink then skips flows without looking at them.
    pub(crate) fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// Counts `flow` in every handler whose filters it passes; runs on the pipeline
    /// thread, and counting into a series that already exists allocates nothing.
    pub fn process(&mut self, flow: &FlowRecord) {
        for configured in &mut self.handlers {
            if let Some(filters) = &configured.filters
                && !filters.matches_flow(flow)
            {
                continue;
            }
            configured.handler.process(flow, &mut self.key);
        }
    }

    /// The families to scrape, in handler order.
    pub fn collectors(&self) -> Vec<Arc<dyn Collect>> {
        self.handlers.iter().flat_map(|c| c.handler.collectors()).collect()
    }

    /// Removes the series naming a pod (by `namespace/name`, name or address).
    pub fn forget(&mut self, gone: &dyn Fn(&str, &str) -> bool) -> usize {
        self.handlers.iter_mut().map(|c| c.handler.forget(gone)).sum()
    }

    /// How many series shortcuts the handlers hold, for tests.
    pub fn shortcut_count(&self) -> usize {
        self.handlers.iter().map(|c| c.handler.shortcut_count()).sum()
    }

    /// Takes over the handlers of `previous` whose configuration did not change,
    /// so their series keep counting; the others start empty.
    pub fn keep_unchanged_from(&mut self, previous: FlowMetrics) {
        let mut old = previous.handlers;
        for configured in &mut self.handlers {
            if let Some(index) = old
                .iter()
                .position(|o| o.spec == configured.spec && o.fingerprint == configured.fingerprint)
            {
                let kept = old.swap_remove(index);
                configured.handler = kept.handler;
            }
        }
    }
}
