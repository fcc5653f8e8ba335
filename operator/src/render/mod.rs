//! The spec turned into ConfigMap data: the agents' and the relay's own `--config`
//! file keys, Hubble's dynamic metrics and flow-log files, per-node profiles where
//! `nodeOverrides` apply, and a checksum of what only a restart can apply.

pub mod agent;
pub mod relay;
pub mod restart;

pub use agent::{AgentConfigMap, effective_agent, render_agent};
pub use relay::render_relay;
pub use restart::{RestartSettings, restart_checksum, restart_needed, restart_settings};

/// The ConfigMap the agents mount.
pub const AGENT_CONFIGMAP: &str = "sightline-agent-config";
/// The ConfigMap the relay mounts.
pub const RELAY_CONFIGMAP: &str = "sightline-relay-config";
/// The data key holding the spec generation the files were rendered from; agents
/// report it back once they run it.
pub const GENERATION_KEY: &str = "generation";

/// A rendering problem (only YAML encoding can fail once the spec is validated).
#[derive(Debug, thiserror::Error)]
#[error("rendering {what}: {source}")]
pub struct RenderError {
    /// Which file was being rendered.
    pub what: &'static str,
    /// The YAML encoder's failure.
    pub source: serde_yaml_ng::Error,
}

#[cfg(test)]
mod tests;
