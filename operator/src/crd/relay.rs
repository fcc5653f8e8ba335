//! `spec.relay`: the relay's live-reloadable timeouts and buffers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Relay settings; each maps to the relay flag of the same name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RelaySettings {
    /// Responses held to order the merged stream by time (`--sort-buffer-len-max`).
    #[serde(default = "default_sort_buffer_len_max")]
    #[schemars(range(min = 1, max = 1000000))]
    pub sort_buffer_len_max: u32,
    /// How long a response may wait for older ones from slower agents (`--sort-buffer-drain-timeout`).
    #[serde(default = "default_sort_buffer_drain_timeout")]
    #[schemars(schema_with = "super::schema::duration")]
    pub sort_buffer_drain_timeout: String,
    /// Longest wait between attempts to re-dial the peer service (`--retry-timeout`).
    #[serde(default = "default_retry_timeout")]
    #[schemars(schema_with = "super::schema::duration")]
    pub retry_timeout: String,
    /// How long to wait for an agent to accept a connection (`--dial-timeout`).
    #[serde(default = "default_dial_timeout")]
    #[schemars(schema_with = "super::schema::duration")]
    pub dial_timeout: String,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            sort_buffer_len_max: default_sort_buffer_len_max(),
            sort_buffer_drain_timeout: default_sort_buffer_drain_timeout(),
            retry_timeout: default_retry_timeout(),
            dial_timeout: default_dial_timeout(),
        }
    }
}

fn default_sort_buffer_len_max() -> u32 {
    100
}

fn default_sort_buffer_drain_timeout() -> String {
    "1s".into()
}

fn default_retry_timeout() -> String {
    "30s".into()
}

fn default_dial_timeout() -> String {
    "5s".into()
}
