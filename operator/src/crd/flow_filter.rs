//! Hubble's `flow.FlowFilter` as a schema, with the proto3 JSON (lowerCamelCase)
//! names of `proto/flow/flow.proto`. Every field is listed so the API server's
//! strict field validation rejects a filter field that does not exist, and enum
//! fields accept only the enum's value names.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use sightline_proto::flow;

use super::schema::list_of;

/// One flow filter: a flow matches when it matches every populated field (within a
/// field, any of the listed values). An empty filter matches every flow.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowFilter {
    /// Flow UUIDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uuid: Vec<String>,
    /// Source IP addresses or CIDR prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ip: Vec<String>,
    /// Source IPs after SNAT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ip_xlated: Vec<String>,
    /// Source pods as `namespace/name` prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_pod: Vec<String>,
    /// Source FQDNs (`*` wildcards allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_fqdn: Vec<String>,
    /// Source label selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_label: Vec<String>,
    /// Source services as `namespace/name` prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_service: Vec<String>,
    /// Source workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_workload: Vec<Workload>,
    /// Source cluster names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_cluster_name: Vec<String>,
    /// Destination IP addresses or CIDR prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_ip: Vec<String>,
    /// Destination pods as `namespace/name` prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_pod: Vec<String>,
    /// Destination FQDNs (`*` wildcards allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_fqdn: Vec<String>,
    /// Destination label selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_label: Vec<String>,
    /// Destination services as `namespace/name` prefixes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_service: Vec<String>,
    /// Destination workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_workload: Vec<Workload>,
    /// Destination cluster names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_cluster_name: Vec<String>,
    /// Traffic directions (`TRAFFIC_DIRECTION_UNKNOWN`, `INGRESS`, `EGRESS`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "traffic_directions")]
    pub traffic_direction: Vec<String>,
    /// Verdicts (`FORWARDED`, `DROPPED`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "verdicts")]
    pub verdict: Vec<String>,
    /// Drop reasons, by `flow.DropReason` name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "drop_reasons")]
    pub drop_reason_desc: Vec<String>,
    /// Network interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interface: Vec<NetworkInterface>,
    /// Event types (and optionally sub-types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_type: Vec<EventTypeFilter>,
    /// HTTP status codes or prefixes such as `4+`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_status_code: Vec<String>,
    /// L4/L7 protocols (`tcp`, `udp`, `http`, `dns`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocol: Vec<String>,
    /// Source ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_port: Vec<String>,
    /// Destination ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_port: Vec<String>,
    /// Whether the flow is a reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply: Vec<bool>,
    /// DNS query name regular expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_query: Vec<String>,
    /// Source security identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_identity: Vec<u32>,
    /// Destination security identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_identity: Vec<u32>,
    /// HTTP methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_method: Vec<String>,
    /// HTTP path regular expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_path: Vec<String>,
    /// HTTP URL regular expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_url: Vec<String>,
    /// HTTP headers that must be present with the given value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_header: Vec<HttpHeader>,
    /// TCP flag combinations (a flow matches when all flags of one entry are set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_flags: Vec<TcpFlags>,
    /// Node names (`*` wildcards and `cluster/` prefixes allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_name: Vec<String>,
    /// Node label selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_labels: Vec<String>,
    /// IP versions (`IP_NOT_USED`, `IPv4`, `IPv6`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "ip_versions")]
    pub ip_version: Vec<String>,
    /// Trace IDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace_id: Vec<String>,
    /// IP option trace IDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_trace_id: Vec<u64>,
    /// Whether the traffic was encrypted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encrypted: Vec<bool>,
    /// Experimental filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental: Option<ExperimentalFilter>,
}

/// A workload (Deployment, StatefulSet, ...) by name and kind.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// Workload name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Workload kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

/// A network interface by index or name.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkInterface {
    /// Interface index.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub index: u32,
    /// Interface name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// An event type, with an optional sub-type.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventTypeFilter {
    /// The monitor event type.
    #[serde(default, rename = "type")]
    pub event_type: i32,
    /// Whether `subType` must match too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub match_sub_type: bool,
    /// The sub-type to match.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub sub_type: i32,
}

/// An HTTP header and value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpHeader {
    /// Header name.
    pub key: String,
    /// Header value.
    #[serde(default)]
    pub value: String,
}

/// TCP flags; the names are the proto's (upper case).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "UPPERCASE", deny_unknown_fields)]
#[allow(clippy::upper_case_acronyms)]
pub struct TcpFlags {
    /// FIN.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fin: bool,
    /// SYN.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub syn: bool,
    /// RST.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rst: bool,
    /// PSH.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub psh: bool,
    /// ACK.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ack: bool,
    /// URG.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub urg: bool,
    /// ECE.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ece: bool,
    /// CWR.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cwr: bool,
    /// NS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ns: bool,
}

/// Experimental filters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExperimentalFilter {
    /// CEL expressions over the flow; several are OR'ed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cel_expression: Vec<String>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

/// The value names of a proto enum, in number order, read from the generated code
/// so the schema and the wire agree.
fn enum_names<E: TryFrom<i32>>(name: impl Fn(E) -> &'static str) -> Vec<&'static str> {
    // Hubble's enums are dense from 0 with gaps of unused numbers; 1024 covers them all.
    (0..1024)
        .filter_map(|number| E::try_from(number).ok().map(&name))
        .collect()
}

fn traffic_directions(_: &mut SchemaGenerator) -> Schema {
    list_of(&enum_names(|e: flow::TrafficDirection| e.as_str_name()))
}

fn verdicts(_: &mut SchemaGenerator) -> Schema {
    list_of(&enum_names(|e: flow::Verdict| e.as_str_name()))
}

/// Every `flow.DropReason` name.
pub fn drop_reason_names() -> Vec<&'static str> {
    enum_names(|e: flow::DropReason| e.as_str_name())
}

fn drop_reasons(_: &mut SchemaGenerator) -> Schema {
    list_of(&drop_reason_names())
}

fn ip_versions(_: &mut SchemaGenerator) -> Schema {
    list_of(&enum_names(|e: flow::IpVersion| e.as_str_name()))
}
