//! Flags of the live configuration's Kubernetes side.

use std::time::Duration;

use sightline_common::duration::parse_duration;

/// Where the agent watches the operator's ConfigMap and reports its generation Lease.
#[derive(Debug, Clone, clap::Args)]
pub struct LiveArgs {
    /// The operator's agent ConfigMap, watched through the API so that a change
    /// applies within seconds (the mounted copy follows after the kubelet's sync);
    /// empty = only the `--config` file. Also turns on the generation Lease.
    #[arg(long, env = "SIGHTLINE_CONFIG_MAP", default_value = "")]
    pub config_map: String,

    /// Namespace of `--config-map` and of this node's generation Lease
    /// [default: $POD_NAMESPACE, else the service account's namespace].
    #[arg(long, env = "SIGHTLINE_CONFIG_MAP_NAMESPACE")]
    pub config_map_namespace: Option<String>,

    /// How often this node's Lease is renewed (it is valid three times as long).
    #[arg(long, env = "SIGHTLINE_CONFIG_LEASE_RENEW_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub config_lease_renew_interval: Duration,
}

impl LiveArgs {
    /// The namespace of the ConfigMap and Lease: `--config-map-namespace`, else
    /// `$POD_NAMESPACE`, else the service account's namespace, else `default`.
    pub fn namespace(&self) -> String {
        sightline_common::live_source::pod_namespace(self.config_map_namespace.as_deref())
    }
}
