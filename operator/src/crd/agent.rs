//! `spec.agent` and the per-node-pool overrides laid over it.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::observability::{FlowLogConfig, MetricConfig};

/// How much the kernel aggregates before reporting a packet (Cilium's monitor aggregation).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AggregationLevel {
    /// Every packet.
    None,
    /// New flows, any new TCP flag, and once per interval.
    Low,
    /// New flows, SYN/FIN/RST, and once per interval.
    #[default]
    Medium,
    /// New flows and SYN/FIN/RST only.
    Maximum,
}

/// Which kernel packet drops become DROPPED flows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DropEvents {
    /// Drops of traffic the classifiers have seen.
    #[default]
    Observed,
    /// Every packet the kernel drops.
    All,
    /// No drop events.
    Off,
}

/// What the operator does when a setting changes that running agents cannot apply live.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RestartPolicy {
    /// Nothing: the `ConfigApplied` condition names the setting that waits for a restart.
    #[default]
    None,
    /// Restart the agents one by one (a checksum annotation on the DaemonSet's pod template).
    Rolling,
}

/// Agent settings; each maps to the agent flag of the same (kebab-case) name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSettings {
    /// Kernel aggregation level (`--monitor-aggregation`). Applied live.
    #[serde(default)]
    pub monitor_aggregation: AggregationLevel,
    /// How often an active flow is reported again at levels low and medium
    /// (`--monitor-aggregation-interval`). Applied live.
    #[serde(default = "default_aggregation_interval")]
    #[schemars(schema_with = "super::schema::duration")]
    pub monitor_aggregation_interval: String,
    /// Interfaces (names or globs) observed with TC; empty = every pod veth (`--interfaces`). Applied live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1, max = 64)))]
    pub interfaces: Vec<String>,
    /// Which kernel drops are reported (`--drop-events`). Applied live.
    #[serde(default)]
    pub drop_events: DropEvents,
    /// At most one drop report per flow per this interval (`--drop-events-interval`). Applied live.
    #[serde(default = "default_drop_events_interval")]
    #[schemars(schema_with = "super::schema::duration")]
    pub drop_events_interval: String,
    /// Events kept in each agent's ring: 2^n - 1, at most 1048575 (`--event-buffer-capacity`).
    /// Needs a restart.
    #[serde(default = "default_event_buffer_capacity")]
    #[schemars(range(min = 1, max = 1048575))]
    pub event_buffer_capacity: u32,
    /// What happens when a setting that needs a restart changes.
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// Hubble metrics handlers (the dynamic metrics list). Applied live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub metrics: Vec<MetricConfig>,
    /// Flow-log exporters (the dynamic exporter list). Applied live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub flow_logs: Vec<FlowLogConfig>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            monitor_aggregation: AggregationLevel::default(),
            monitor_aggregation_interval: default_aggregation_interval(),
            interfaces: Vec::new(),
            drop_events: DropEvents::default(),
            drop_events_interval: default_drop_events_interval(),
            event_buffer_capacity: default_event_buffer_capacity(),
            restart_policy: RestartPolicy::default(),
            metrics: Vec::new(),
            flow_logs: Vec::new(),
        }
    }
}

/// Settings that differ on some nodes; unset fields keep `spec.agent`'s value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentOverride {
    /// Kernel aggregation level on these nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_aggregation: Option<AggregationLevel>,
    /// Aggregation interval on these nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::optional_duration")]
    pub monitor_aggregation_interval: Option<String>,
    /// Interfaces observed on these nodes (replaces the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<Vec<String>>,
    /// Drop events on these nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_events: Option<DropEvents>,
    /// Drop report interval on these nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::optional_duration")]
    pub drop_events_interval: Option<String>,
    /// Ring capacity on these nodes (needs a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048575))]
    pub event_buffer_capacity: Option<u32>,
    /// Metrics handlers on these nodes (replaces the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricConfig>>,
    /// Flow-log exporters on these nodes (replaces the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_logs: Option<Vec<FlowLogConfig>>,
}

/// Agent settings for the nodes whose labels match `nodeSelector`. When several
/// overrides match a node, they apply in list order (later ones win).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeOverride {
    /// Node labels that must all be present with these values.
    #[schemars(extend("minProperties" = 1))]
    pub node_selector: BTreeMap<String, String>,
    /// The settings that differ on these nodes.
    pub agent: AgentOverride,
}

fn default_aggregation_interval() -> String {
    "5s".into()
}

fn default_drop_events_interval() -> String {
    "1s".into()
}

/// The agent's own default ring capacity.
fn default_event_buffer_capacity() -> u32 {
    4095
}
