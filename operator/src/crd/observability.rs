//! Hubble's dynamic metrics and flow-log (exporter) lists, as in the agent's
//! `hubble-dynamic-metrics-config` and `hubble-flowlogs-config` files.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::flow_filter::FlowFilter;

/// A metrics handler by its registry name.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MetricHandler {
    /// `hubble_flows_processed_total`.
    #[serde(rename = "flow")]
    Flow,
    /// `hubble_drop_total`.
    #[serde(rename = "drop")]
    Drop,
    /// `hubble_tcp_flags_total`.
    #[serde(rename = "tcp")]
    Tcp,
    /// `hubble_port_distribution_total`.
    #[serde(rename = "port-distribution")]
    PortDistribution,
    /// `hubble_icmp_total`.
    #[serde(rename = "icmp")]
    Icmp,
    /// `hubble_dns_queries_total`, `hubble_dns_responses_total`, `hubble_dns_response_types_total`.
    #[serde(rename = "dns")]
    Dns,
    /// `hubble_http_requests_total`, `hubble_http_responses_total`, `hubble_http_request_duration_seconds`.
    #[serde(rename = "http")]
    Http,
    /// HTTP metrics counted on responses, with exemplars.
    #[serde(rename = "httpV2")]
    HttpV2,
    /// `hubble_kafka_requests_total`, `hubble_kafka_request_duration_seconds`.
    #[serde(rename = "kafka")]
    Kafka,
    /// `hubble_flows_to_world_total`.
    #[serde(rename = "flows-to-world")]
    FlowsToWorld,
    /// `hubble_policy_verdicts_total`.
    #[serde(rename = "policy")]
    Policy,
    /// `hubble_sctp_chunk_types_total`.
    #[serde(rename = "sctp")]
    Sctp,
}

/// A context or handler option of a metric.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum MetricOption {
    /// Label `source` from the first non-empty identifier listed.
    #[serde(rename = "sourceContext")]
    SourceContext,
    /// Label `destination` from the first non-empty identifier listed.
    #[serde(rename = "destinationContext")]
    DestinationContext,
    /// `source` for egress flows.
    #[serde(rename = "sourceEgressContext")]
    SourceEgressContext,
    /// `source` for ingress flows.
    #[serde(rename = "sourceIngressContext")]
    SourceIngressContext,
    /// `destination` for egress flows.
    #[serde(rename = "destinationEgressContext")]
    DestinationEgressContext,
    /// `destination` for ingress flows.
    #[serde(rename = "destinationIngressContext")]
    DestinationIngressContext,
    /// A fixed set of labels (`source_ip`, `source_pod`, ..., `traffic_direction`).
    #[serde(rename = "labelsContext")]
    LabelsContext,
    /// dns: add the query as a label.
    #[serde(rename = "query")]
    Query,
    /// dns: ignore AAAA queries.
    #[serde(rename = "ignoreAAAA")]
    IgnoreAaaa,
    /// httpV2: attach trace ID exemplars.
    #[serde(rename = "exemplars")]
    Exemplars,
    /// flows-to-world: count every drop, not only policy denials.
    #[serde(rename = "any-drop")]
    AnyDrop,
    /// flows-to-world: add the destination port as a label.
    #[serde(rename = "port")]
    Port,
    /// flows-to-world: count only TCP SYNs.
    #[serde(rename = "syn-only")]
    SynOnly,
}

/// One option with its values.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContextOption {
    /// The option.
    pub name: MetricOption,
    /// Its values, e.g. `[namespace, pod]` for a context (the first non-empty one wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// One enabled metrics handler.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricConfig {
    /// The handler.
    pub name: MetricHandler,
    /// Labels and handler options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_options: Vec<ContextOption>,
    /// Only flows matching one of these filters are counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_filters: Vec<FlowFilter>,
    /// Flows matching one of these filters are not counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_filters: Vec<FlowFilter>,
}

/// One flow-log exporter: matching flows written as JSON lines to a file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowLogConfig {
    /// Exporter name, unique in the list.
    #[schemars(length(min = 1), regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"))]
    pub name: String,
    /// File to write (`stdout` for the agent's standard output), rotated by size.
    #[schemars(length(min = 1))]
    pub file_path: String,
    /// Flow field paths kept in each record (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_mask: Vec<String>,
    /// Flow field paths to aggregate on (with `aggregationInterval`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_aggregate: Vec<String>,
    /// How often aggregated records are written; unset or 0s disables aggregation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::optional_duration")]
    pub aggregation_interval: Option<String>,
    /// Only flows matching one of these filters are written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_filters: Vec<FlowFilter>,
    /// Flows matching one of these filters are not written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_filters: Vec<FlowFilter>,
    /// Rotate the file at this size in MiB (0 = 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub file_max_size_mb: Option<u32>,
    /// Rotated files kept (0 = 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub file_max_backups: Option<u32>,
    /// Gzip rotated files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_compress: Option<bool>,
    /// Stop exporting at this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub end: Option<String>,
}
