//! Hubble's dynamic metrics file (`--dynamic-metrics-config-path`):
//!
//! ```yaml
//! metrics:
//!   - name: flow
//!     contextOptions:
//!       - name: sourceContext
//!         values: [pod, ip]
//!     includeFilters: [{source_pod: ["shop/"]}]
//!     excludeFilters: []
//! ```
//!
//! Watched every 500 ms: a new configuration reaches the pipeline within 2 s; a
//! broken one is logged with its line, counted, and the last good one stays.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;
use sightline_proto::flow::FlowFilter;

use super::MetricsError;
use super::engine::FlowMetrics;
use super::options::MetricSpec;
use crate::observer::filter::FilterSet;

const POLL_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum DynamicConfigError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: line {line}: {reason}")]
    Syntax { path: PathBuf, line: usize, reason: String },
    #[error("{path}: {source}")]
    Metrics { path: PathBuf, source: MetricsError },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    metrics: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    context_options: Vec<ContextOption>,
    #[serde(default)]
    include_filters: Vec<serde_json::Value>,
    #[serde(default)]
    exclude_filters: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextOption {
    name: String,
    #[serde(default)]
    values: Vec<String>,
}

fn filters(path: &Path, metric: &str, values: &[serde_json::Value]) -> Result<Vec<FlowFilter>, DynamicConfigError> {
    values
        .iter()
        .map(|value| {
            serde_json::from_value::<FlowFilter>(value.clone()).map_err(|err| DynamicConfigError::Metrics {
                path: path.to_owned(),
                source: MetricsError::Filter {
                    metric: metric.to_owned(),
                    reason: err.to_string(),
                },
            })
        })
        .collect()
}

/// Parses and checks the file's text into handlers.
pub(crate) fn parse(path: &Path, text: &str, max_series: usize) -> Result<FlowMetrics, DynamicConfigError> {
    let file: File = serde_yaml_ng::from_str(text).map_err(|err| DynamicConfigError::Syntax {
        path: path.to_owned(),
        line: err.location().map_or(0, |l| l.line()),
        reason: err.to_string(),
    })?;
    let metrics_error = |source| DynamicConfigError::Metrics {
        path: path.to_owned(),
        source,
    };
    let mut configured = Vec::with_capacity(file.metrics.len());
    for entry in file.metrics {
        let options = entry
            .context_options
            .iter()
            .map(|option| {
                let separator = if option.name.eq_ignore_ascii_case("labelsContext") {
                    ","
                } else {
                    "|"
                };
                (option.name.clone(), option.values.join(separator))
            })
            .collect();
        let include = filters(path, &entry.name, &entry.include_filters)?;
        let exclude = filters(path, &entry.name, &entry.exclude_filters)?;
        let set = if include.is_empty() && exclude.is_empty() {
            None
        } else {
            Some(FilterSet::compile(&include, &exclude).map_err(|err| {
                metrics_error(MetricsError::Filter {
                    metric: entry.name.clone(),
                    reason: err.to_string(),
                })
            })?)
        };
        // The filters are part of what must stay equal for series to be kept.
        let fingerprint = format!("{:?}|{:?}", entry.include_filters, entry.exclude_filters);
        configured.push((
            MetricSpec {
                name: entry.name,
                options,
            },
            set,
            fingerprint,
        ));
    }
    FlowMetrics::with_filters(configured, max_series).map_err(metrics_error)
}

pub(crate) fn load(path: &Path, max_series: usize) -> Result<(FlowMetrics, Vec<u8>), DynamicConfigError> {
    let bytes = std::fs::read(path).map_err(|source| DynamicConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let metrics = parse(path, &String::from_utf8_lossy(&bytes), max_series)?;
    Ok((metrics, bytes))
}

/// `sightline_metrics_config_reloads_total{result}`: applied (`success`) or
/// refused (`error`) changes of the dynamic file.
pub(crate) type Reloads = Family<Vec<(&'static str, &'static str)>, Counter>;

/// Re-reads `path` whenever its bytes change and sends each good configuration.
/// Stops when the receiver is gone.
pub(crate) fn watch(path: PathBuf, max_series: usize, mut seen: Vec<u8>, reloads: Reloads, send: Sender<FlowMetrics>) {
    std::thread::Builder::new()
        .name("metrics-config".into())
        .spawn(move || {
            loop {
                std::thread::sleep(POLL_INTERVAL);
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                if bytes == seen {
                    continue;
                }
                seen = bytes;
                match parse(&path, &String::from_utf8_lossy(&seen), max_series) {
                    Ok(metrics) => {
                        if send.send(metrics).is_err() {
                            return;
                        }
                        reloads.get_or_create(&vec![("result", "success")]).inc();
                        tracing::info!(path = %path.display(), "metrics configuration applied");
                    }
                    Err(err) => {
                        reloads.get_or_create(&vec![("result", "error")]).inc();
                        tracing::warn!(%err, "metrics configuration refused; the previous one stays in force");
                    }
                }
            }
        })
        .map(drop)
        .unwrap_or_else(|err| tracing::error!(%err, "cannot start the metrics configuration watcher"));
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::flow_record::FlowRecord;
    use crate::metrics::handlers::testing::{samples, scrape_metrics, syn, tcp_flow};

    const GOOD: &str = "metrics:
  - name: flow
    contextOptions:
      - name: sourceContext
        values: [pod-name, ip]
      - name: labelsContext
        values: [traffic_direction, source_namespace]
    includeFilters:
      - source_pod: [\"shop/\"]
  - name: drop
";

    #[test]
    fn the_file_configures_handlers_with_context_and_filters() {
        let mut metrics = parse(Path::new("m.yaml"), GOOD, 100).unwrap();
        let mut other = tcp_flow(syn(), 80);
        other.source.as_mut().unwrap().namespace = "db".into();
        metrics.process(&FlowRecord::new(tcp_flow(syn(), 80)));
        metrics.process(&FlowRecord::new(other));
        assert_eq!(
            samples(&scrape_metrics(&metrics), "hubble_flows_processed_total"),
            [concat!(
                r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED","#,
                r#"source_namespace="shop",traffic_direction="egress",source="web-7d4f9-xk2p9"} 1"#
            )],
            "the include filter keeps the shop pod only"
        );
    }

    #[test]
    fn mistakes_name_the_line_or_the_option() {
        let broken = "metrics:\n  - name: flow\n    contextOptions: [\n";
        let err = parse(Path::new("m.yaml"), broken, 100).unwrap_err();
        assert!(
            matches!(err, DynamicConfigError::Syntax { line, .. } if line >= 3),
            "{err}"
        );
        let unknown =
            "metrics:\n  - name: flow\n    contextOptions:\n      - name: sourceContext\n        values: [pods]\n";
        let err = parse(Path::new("m.yaml"), unknown, 100).unwrap_err().to_string();
        assert!(err.contains("\"pods\""), "{err}");
        let typo = "metrics:\n  - name: flow\n    includeFilter: []\n";
        let err = parse(Path::new("m.yaml"), typo, 100).unwrap_err().to_string();
        assert!(err.contains("includeFilter"), "{err}");
        let filter = "metrics:\n  - name: flow\n    includeFilters: [{source_pods: [x]}]\n";
        let err = parse(Path::new("m.yaml"), filter, 100).unwrap_err().to_string();
        assert!(err.contains("source_pods"), "{err}");
    }

    #[test]
    fn a_reload_keeps_the_series_of_unchanged_handlers() {
        let mut old = parse(Path::new("m.yaml"), GOOD, 100).unwrap();
        old.process(&FlowRecord::new(crate::metrics::handlers::testing::dropped(
            tcp_flow(syn(), 80),
            sightline_proto::flow::DropReason::PolicyDenied as i32,
        )));
        let changed = GOOD.replace("pod-name, ip", "namespace");
        let mut new = parse(Path::new("m.yaml"), &changed, 100).unwrap();
        new.keep_unchanged_from(old);
        let text = scrape_metrics(&new);
        assert_eq!(
            samples(&text, "hubble_drop_total"),
            [r#"hubble_drop_total{reason="POLICY_DENIED",protocol="TCP"} 1"#],
            "drop did not change: its series stay"
        );
        assert!(
            samples(&text, "hubble_flows_processed_total").is_empty(),
            "flow changed: it starts over"
        );
    }
}
