//! The `SightlineConfig` custom resource (`sightline.dev/v1alpha1`, cluster-scoped).
//! The one named `default` is in force; the schema rejects what it can at
//! `kubectl apply`, [`crate::validate`] the rest.

pub mod agent;
pub mod flow_filter;
pub mod observability;
pub mod relay;
pub mod schema;
pub mod status;
pub mod tls;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use agent::{AgentOverride, AgentSettings, AggregationLevel, DropEvents, NodeOverride, RestartPolicy};
pub use relay::RelaySettings;
pub use status::{CertificateStatus, Condition, SightlineConfigStatus};
pub use tls::{TlsMode, TlsSettings};

/// The name of the one `SightlineConfig` the operator applies.
pub const IN_FORCE_NAME: &str = "default";

/// Cluster-wide Sightline configuration: agents, relay and TLS.
// The lint reads each printcolumn's `type_ = ...` as a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "sightline.dev",
    version = "v1alpha1",
    kind = "SightlineConfig",
    plural = "sightlineconfigs",
    shortname = "slc",
    category = "sightline",
    status = "SightlineConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "TLS", type_ = "string", json_path = ".spec.tls.mode"),
    printcolumn(name = "Agents", type_ = "integer", json_path = ".status.agentsTotal"),
    printcolumn(name = "Current", type_ = "integer", json_path = ".status.agentsCurrent"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SightlineConfigSpec {
    /// Cluster name: prefixes node names and goes into the agents' certificate
    /// name `*.<cluster>.hubble-grpc.cilium.io` (dots become dashes).
    #[serde(default = "default_cluster_name")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub cluster_name: String,
    /// Settings of every agent (before `nodeOverrides`).
    #[serde(default)]
    pub agent: AgentSettings,
    /// Settings of the relay.
    #[serde(default)]
    pub relay: RelaySettings,
    /// The TLS lifecycle.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Agent settings for node pools, applied in order over `agent` on matching nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_overrides: Vec<NodeOverride>,
}

fn default_cluster_name() -> String {
    sightline_common::names::DEFAULT_CLUSTER.to_owned()
}
