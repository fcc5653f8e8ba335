//! The pipeline stage that counts flows into the metrics before they go on to
//! the ring. It runs on the pipeline thread and never waits: series lookups are
//! local, and a reload is picked up from a channel without blocking.

use std::sync::mpsc::Receiver;

use super::engine::FlowMetrics;
use super::registry::FlowFamilies;
use crate::event::{Event, EventSink};

/// `EventSink` that counts flows (and lost events) into the metrics, then passes every
/// event on to `inner` unchanged.
pub struct MetricsSink<S> {
    metrics: FlowMetrics,
    families: FlowFamilies,
    /// New configurations from the dynamic config watcher.
    reloads: Option<Receiver<FlowMetrics>>,
    /// Pods that left (`namespace`, `name`, addresses), from the expiry timer.
    gone: Option<Receiver<GonePod>>,
    lost: Option<super::runtime::LostEvents>,
    inner: S,
}

/// A pod whose series are due for removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GonePod {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name, without the namespace.
    pub name: String,
    /// Addresses the pod held, as series labels spell them.
    pub ips: Vec<String>,
}

impl GonePod {
    /// Whether `value` of label `label` names this pod.
    pub fn is_named_by(&self, label: &str, value: &str) -> bool {
        let is_ip = || self.ips.iter().any(|ip| ip == value);
        match label {
            "source" | "destination" => {
                value
                    .strip_prefix(self.namespace.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    == Some(self.name.as_str())
                    || value == self.name
                    || is_ip()
            }
            "source_pod" | "destination_pod" => value == self.name,
            "source_ip" | "destination_ip" => is_ip(),
            _ => false,
        }
    }
}

impl<S: EventSink> MetricsSink<S> {
    /// Counts with `metrics`, whose families `families` publishes to scrapes.
    pub fn new(metrics: FlowMetrics, families: FlowFamilies, inner: S) -> Self {
        families.replace(metrics.collectors());
        Self {
            metrics,
            families,
            reloads: None,
            gone: None,
            lost: None,
            inner,
        }
    }

    /// Switches to each configuration received on `reloads` (the newest, when several
    /// are queued) at the next idle moment; unchanged handlers keep their series.
    pub fn with_reloads(mut self, reloads: Receiver<FlowMetrics>) -> Self {
        self.reloads = Some(reloads);
        self
    }

    /// Removes the series of each pod received on `gone` at the next idle moment.
    pub fn with_expiry(mut self, gone: Receiver<GonePod>) -> Self {
        self.gone = Some(gone);
        self
    }

    /// Counts `Event::Lost` in `hubble_lost_events_total{source}`.
    pub fn with_lost_events(mut self, lost: super::runtime::LostEvents) -> Self {
        self.lost = Some(lost);
        self
    }

    /// The next stage, e.g. for tests that read what reached it.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    fn apply_pending(&mut self) {
        if let Some(reloads) = &self.reloads {
            // Only the newest configuration matters when several queued up.
            let mut latest = None;
            while let Ok(metrics) = reloads.try_recv() {
                latest = Some(metrics);
            }
            if let Some(mut metrics) = latest {
                metrics.keep_unchanged_from(std::mem::take(&mut self.metrics));
                self.families.replace(metrics.collectors());
                self.metrics = metrics;
            }
        }
        if let Some(gone) = &self.gone {
            while let Ok(pod) = gone.try_recv() {
                let removed = self.metrics.forget(&|label, value| pod.is_named_by(label, value));
                tracing::debug!(namespace = %pod.namespace, pod = %pod.name, removed, "removed the series of a deleted pod");
            }
        }
    }
}

/// Hubble's `source` label: the lower-cased `LostEventSource` name.
fn lost_source(source: i32) -> String {
    sightline_proto::flow::LostEventSource::try_from(source)
        .map_or_else(|_| source.to_string(), |s| s.as_str_name().to_ascii_lowercase())
}

impl<S: EventSink> EventSink for MetricsSink<S> {
    fn publish(&mut self, event: Event) {
        match &event {
            Event::Flow(flow) if !self.metrics.is_empty() => self.metrics.process(flow),
            Event::Lost { event: lost, .. } => {
                if let Some(counter) = &self.lost {
                    counter
                        .get_or_create(&vec![("source", lost_source(lost.source))])
                        .inc_by(lost.num_events_lost);
                }
            }
            _ => {}
        }
        self.inner.publish(event);
    }

    fn idle(&mut self) {
        self.apply_pending();
        self.inner.idle();
    }
}
