//! Agent configuration: `spec.agent` with the matching `nodeOverrides` on top.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{GENERATION_KEY, RenderError};
use crate::crd::observability::{FlowLogConfig, MetricConfig};
use crate::crd::{AgentOverride, AgentSettings, NodeOverride, SightlineConfigSpec};

/// Data keys of the agent ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";
/// Data key of the agent's metrics settings.
pub const METRICS_KEY: &str = "metrics.yaml";
/// Data key of the agent's flow log (exporter) settings.
pub const FLOW_LOGS_KEY: &str = "flowlogs.yaml";
/// Node name → profile prefix, for nodes whose settings differ from the base.
pub const NODE_PROFILES_KEY: &str = "node-profiles.yaml";

/// Whether every `nodeSelector` entry is among the node's labels.
pub fn selector_matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(key, value)| labels.get(key) == Some(value))
}

fn apply(base: &mut AgentSettings, layer: &AgentOverride) {
    if let Some(level) = layer.monitor_aggregation {
        base.monitor_aggregation = level;
    }
    if let Some(interval) = &layer.monitor_aggregation_interval {
        base.monitor_aggregation_interval.clone_from(interval);
    }
    if let Some(interfaces) = &layer.interfaces {
        base.interfaces.clone_from(interfaces);
    }
    if let Some(drops) = layer.drop_events {
        base.drop_events = drops;
    }
    if let Some(interval) = &layer.drop_events_interval {
        base.drop_events_interval.clone_from(interval);
    }
    if let Some(capacity) = layer.event_buffer_capacity {
        base.event_buffer_capacity = capacity;
    }
    if let Some(metrics) = &layer.metrics {
        base.metrics.clone_from(metrics);
    }
    if let Some(flow_logs) = &layer.flow_logs {
        base.flow_logs.clone_from(flow_logs);
    }
}

/// The agent settings in force on a node with these labels: overrides in list order.
pub fn effective_agent(
    base: &AgentSettings,
    overrides: &[NodeOverride],
    labels: &BTreeMap<String, String>,
) -> AgentSettings {
    let mut settings = base.clone();
    for layer in overrides {
        if selector_matches(&layer.node_selector, labels) {
            apply(&mut settings, &layer.agent);
        }
    }
    settings
}

/// The agent's `--config` file: keys are its long flag names.
#[derive(Serialize)]
struct AgentFlags<'a> {
    #[serde(rename = "cluster-name")]
    cluster_name: &'a str,
    #[serde(rename = "monitor-aggregation")]
    monitor_aggregation: crate::crd::AggregationLevel,
    #[serde(rename = "monitor-aggregation-interval")]
    monitor_aggregation_interval: &'a str,
    #[serde(rename = "interfaces", skip_serializing_if = "<[String]>::is_empty")]
    interfaces: &'a [String],
    #[serde(rename = "drop-events")]
    drop_events: crate::crd::DropEvents,
    #[serde(rename = "drop-events-interval")]
    drop_events_interval: &'a str,
    #[serde(rename = "event-buffer-capacity")]
    event_buffer_capacity: u32,
}

/// Hubble's dynamic metrics file.
#[derive(Serialize)]
struct MetricsFile<'a> {
    metrics: &'a [MetricConfig],
}

/// Hubble's dynamic flow-log file.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FlowLogsFile<'a> {
    flow_logs: &'a [FlowLogConfig],
}

/// One node's three files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentFiles {
    /// The agent's flags as a `--config` file.
    pub config: String,
    /// The metrics settings.
    pub metrics: String,
    /// The flow log settings.
    pub flow_logs: String,
}

fn yaml<T: Serialize>(value: &T, what: &'static str) -> Result<String, RenderError> {
    serde_yaml_ng::to_string(value).map_err(|source| RenderError { what, source })
}

/// The files for one set of effective settings.
pub fn agent_files(cluster: &str, settings: &AgentSettings) -> Result<AgentFiles, RenderError> {
    let flags = AgentFlags {
        cluster_name: cluster,
        monitor_aggregation: settings.monitor_aggregation,
        monitor_aggregation_interval: &settings.monitor_aggregation_interval,
        interfaces: &settings.interfaces,
        drop_events: settings.drop_events,
        drop_events_interval: &settings.drop_events_interval,
        event_buffer_capacity: settings.event_buffer_capacity,
    };
    Ok(AgentFiles {
        config: yaml(&flags, "agent config.yaml")?,
        metrics: yaml(
            &MetricsFile {
                metrics: &settings.metrics,
            },
            "agent metrics.yaml",
        )?,
        flow_logs: yaml(
            &FlowLogsFile {
                flow_logs: &settings.flow_logs,
            },
            "agent flowlogs.yaml",
        )?,
    })
}

/// The agent ConfigMap's data, and which node runs which settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfigMap {
    /// The ConfigMap's data keys and their files.
    pub data: BTreeMap<String, String>,
    /// Effective settings per node (base settings for nodes no override matches).
    pub per_node: BTreeMap<String, AgentSettings>,
}

/// A short name for a set of files, stable across reconciles.
fn profile_name(files: &AgentFiles) -> String {
    let mut hash = Sha256::new();
    for part in [&files.config, &files.metrics, &files.flow_logs] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(5).map(|byte| format!("{byte:02x}")).collect();
    format!("profile-{hex}")
}

/// Renders the agent ConfigMap: base files under `config.yaml`, `metrics.yaml`,
/// `flowlogs.yaml`; nodes whose settings differ get a profile (`profile-<hash>.config.yaml`
/// ...) named in `node-profiles.yaml`. Nodes sharing settings share a profile, so the
/// ConfigMap grows with node pools, not nodes.
pub fn render_agent(
    spec: &SightlineConfigSpec,
    generation: i64,
    nodes: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<AgentConfigMap, RenderError> {
    let base_files = agent_files(&spec.cluster_name, &spec.agent)?;
    let mut data = BTreeMap::new();
    data.insert(CONFIG_KEY.to_owned(), base_files.config.clone());
    data.insert(METRICS_KEY.to_owned(), base_files.metrics.clone());
    data.insert(FLOW_LOGS_KEY.to_owned(), base_files.flow_logs.clone());
    data.insert(GENERATION_KEY.to_owned(), generation.to_string());
    let mut per_node = BTreeMap::new();
    let mut node_profiles = BTreeMap::new();
    for (node, labels) in nodes {
        let settings = effective_agent(&spec.agent, &spec.node_overrides, labels);
        let files = agent_files(&spec.cluster_name, &settings)?;
        if files != base_files {
            let profile = profile_name(&files);
            data.insert(format!("{profile}.{CONFIG_KEY}"), files.config);
            data.insert(format!("{profile}.{METRICS_KEY}"), files.metrics);
            data.insert(format!("{profile}.{FLOW_LOGS_KEY}"), files.flow_logs);
            node_profiles.insert(node.clone(), profile);
        }
        per_node.insert(node.clone(), settings);
    }
    data.insert(
        NODE_PROFILES_KEY.to_owned(),
        yaml(&node_profiles, "node-profiles.yaml")?,
    );
    Ok(AgentConfigMap { data, per_node })
}
