//! Flags of the live configuration's Kubernetes side.

#[derive(Debug, Clone, Default, clap::Args)]
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
}

impl LiveArgs {
    /// The namespace of `--config-map`: the flag, else the pod's own.
    pub fn namespace(&self) -> String {
        sightline_common::live_source::pod_namespace(self.config_map_namespace.as_deref())
    }
}
