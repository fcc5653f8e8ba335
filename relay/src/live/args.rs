//! Flags of the live configuration's Kubernetes side.

use std::time::Duration;

use sightline_common::duration::parse_duration;

#[derive(Debug, Clone, clap::Args)]
/// The flags of the live configuration's Kubernetes side.
pub struct LiveArgs {
    /// The operator's relay ConfigMap, watched through the API so that a change
    /// applies within seconds (a mounted copy follows only after the kubelet's
    /// sync); empty = only the `--config` file, and no Kubernetes API access.
    #[arg(long, env = "SIGHTLINE_RELAY_CONFIG_MAP", default_value = "")]
    pub config_map: String,

    /// Namespace of `--config-map` [default: $POD_NAMESPACE, else the service
    /// account's namespace].
    #[arg(long, env = "SIGHTLINE_RELAY_CONFIG_MAP_NAMESPACE")]
    pub config_map_namespace: Option<String>,

    /// This relay's pod, the holder of its generation Lease
    /// (`sightline-relay-<pod>`, written with `--config-map` only); the chart sets
    /// it from the pod's name. Empty = no Lease, and the operator does not count
    /// this relay.
    #[arg(long, env = "POD_NAME", default_value = "")]
    pub pod_name: String,

    /// How often the generation Lease is renewed (it is valid three times as long).
    #[arg(long, env = "SIGHTLINE_RELAY_CONFIG_LEASE_RENEW_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub config_lease_renew_interval: Duration,
}

impl LiveArgs {
    /// The namespace of `--config-map`: the flag, else the pod's own.
    pub fn namespace(&self) -> String {
        sightline_common::live_source::pod_namespace(self.config_map_namespace.as_deref())
    }
}
