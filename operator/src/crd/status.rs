//! What the operator reports back on the resource.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types the operator sets.
pub const READY: &str = "Ready";
/// The rendered configuration reached every agent.
pub const CONFIG_APPLIED: &str = "ConfigApplied";
/// Every TLS Secret holds a valid, current certificate.
pub const CERTIFICATES_READY: &str = "CertificatesReady";

/// The observed state of a `SightlineConfig`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SightlineConfigStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `ConfigApplied` and `CertificatesReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Agents that report running the current configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents_current: Option<u32>,
    /// Agents there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents_total: Option<u32>,
    /// Relay pods that report running the current configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relays_current: Option<u32>,
    /// Relay pods that report a generation (those without a Lease are not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relays_total: Option<u32>,
    /// Checksum of the rendered configuration in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_checksum: Option<String>,
    /// One entry per certificate Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateStatus>,
}

/// One condition, as in `metav1.Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word.
    pub reason: String,
    /// For humans; names the field when the configuration is at fault.
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A certificate the operator issued or checked.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// The Secret holding it.
    pub secret: String,
    /// Its DNS and IP subject alternative names.
    #[serde(default)]
    pub subject_names: Vec<String>,
    /// When it expires (RFC 3339).
    pub not_after: String,
}
