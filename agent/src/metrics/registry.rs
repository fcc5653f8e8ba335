//! The scrape side of the flow metrics: the families currently configured (they
//! change on a dynamic reload) and the series-limit refusals per family.

use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::series::Collect;

/// Shared between the pipeline (which replaces the list on reload) and the
/// registry (which encodes it on each scrape).
#[derive(Debug, Default, Clone)]
pub struct FlowFamilies {
    current: Arc<RwLock<Vec<Arc<dyn Collect>>>>,
}

impl FlowFamilies {
    /// Makes `families` what the next scrape encodes (a reload's new handlers);
    /// a scrape in progress finishes with the previous list.
    pub fn replace(&self, families: Vec<Arc<dyn Collect>>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = families;
    }

    fn snapshot(&self) -> Vec<Arc<dyn Collect>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Collector for FlowFamilies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let families = self.snapshot();
        for family in &families {
            family.encode(&mut encoder)?;
        }
        let mut limited = encoder.encode_descriptor(
            "sightline_metrics_series_limited",
            "New label sets refused because the metric had reached --metrics-max-series",
            None,
            MetricType::Counter,
        )?;
        for family in &families {
            let name = family.exposed_name();
            let labels = [("metric", name.as_str())];
            limited
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&family.limited(), None)?;
        }
        Ok(())
    }
}
