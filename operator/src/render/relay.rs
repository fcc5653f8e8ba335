//! Relay configuration: its `--config` file keys.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{GENERATION_KEY, RenderError};
use crate::crd::SightlineConfigSpec;

/// Data key of the relay's `--config` file in its ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";

#[derive(Serialize)]
struct RelayFlags<'a> {
    #[serde(rename = "cluster-name")]
    cluster_name: &'a str,
    #[serde(rename = "sort-buffer-len-max")]
    sort_buffer_len_max: u32,
    #[serde(rename = "sort-buffer-drain-timeout")]
    sort_buffer_drain_timeout: &'a str,
    #[serde(rename = "retry-timeout")]
    retry_timeout: &'a str,
    #[serde(rename = "dial-timeout")]
    dial_timeout: &'a str,
}

/// The relay ConfigMap's data.
pub fn render_relay(spec: &SightlineConfigSpec, generation: i64) -> Result<BTreeMap<String, String>, RenderError> {
    let relay = &spec.relay;
    let flags = RelayFlags {
        cluster_name: &spec.cluster_name,
        sort_buffer_len_max: relay.sort_buffer_len_max,
        sort_buffer_drain_timeout: &relay.sort_buffer_drain_timeout,
        retry_timeout: &relay.retry_timeout,
        dial_timeout: &relay.dial_timeout,
    };
    let config = serde_yaml_ng::to_string(&flags).map_err(|source| RenderError {
        what: "relay config.yaml",
        source,
    })?;
    Ok(BTreeMap::from([
        (CONFIG_KEY.to_owned(), config),
        (GENERATION_KEY.to_owned(), generation.to_string()),
    ]))
}
