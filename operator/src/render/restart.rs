//! Settings running processes cannot change: which changed, and a checksum of them
//! for the DaemonSet's pod template (a new value rolls the agents).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crd::SightlineConfigSpec;

/// The pod-template annotation that carries [`restart_checksum`].
pub const RESTART_ANNOTATION: &str = "sightline.dev/restart-checksum";

/// What only a restart applies. The operator records the values the agents were
/// started with, so it can name what a new spec would change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestartSettings {
    /// `--cluster-name` the agents run with.
    pub cluster_name: String,
    /// The base `--event-buffer-capacity`.
    pub event_buffer_capacity: u32,
    /// Per `nodeOverrides` entry, in order: its selector and capacity, if set.
    pub override_capacities: Vec<(String, Option<u32>)>,
}

/// The restart-only settings of a spec.
pub fn restart_settings(spec: &SightlineConfigSpec) -> RestartSettings {
    RestartSettings {
        cluster_name: spec.cluster_name.clone(),
        event_buffer_capacity: spec.agent.event_buffer_capacity,
        override_capacities: spec
            .node_overrides
            .iter()
            .map(|layer| {
                let selector: Vec<String> = layer.node_selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
                (selector.join(","), layer.agent.event_buffer_capacity)
            })
            .collect(),
    }
}

/// Spec fields whose new value needs a restart to take effect.
pub fn restart_needed(running: &RestartSettings, wanted: &RestartSettings) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if running.cluster_name != wanted.cluster_name {
        fields.push("spec.clusterName");
    }
    if running.event_buffer_capacity != wanted.event_buffer_capacity {
        fields.push("spec.agent.eventBufferCapacity");
    }
    if running.override_capacities != wanted.override_capacities {
        fields.push("spec.nodeOverrides[].agent.eventBufferCapacity");
    }
    fields
}

/// A checksum of the restart-only settings: a live-applied change leaves it alone.
pub fn restart_checksum(settings: &RestartSettings) -> String {
    let canonical = serde_json::to_vec(settings).unwrap_or_default();
    Sha256::digest(&canonical)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
