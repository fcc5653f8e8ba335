//! Flags of the live configuration's Kubernetes side.

/// Where a pod finds its own namespace when `POD_NAMESPACE` is not set.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Debug, Clone, Default, clap::Args)]
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
    pub fn namespace(&self) -> String {
        self.config_map_namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|ns| !ns.is_empty()))
            .or_else(|| {
                std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                    .ok()
                    .map(|ns| ns.trim().to_owned())
                    .filter(|ns| !ns.is_empty())
            })
            .unwrap_or_else(|| "default".to_owned())
    }
}
