//! The operator's agent ConfigMap as a source, watched by name through the API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use sightline_common::live_source::config_map::{self, generation_in};
use tokio::sync::mpsc::Sender;

use super::{LiveConfigError, Snapshot, profile};

pub(crate) use sightline_common::live_source::config_map::CONFIG_KEY;
pub(crate) const METRICS_KEY: &str = "metrics.yaml";
pub(crate) const FLOWLOGS_KEY: &str = "flowlogs.yaml";

/// This node's configuration in the ConfigMap's `data`: its profile's keys when
/// `node-profiles.yaml` names it, the base keys otherwise.
pub(crate) fn snapshot_from(
    origin: PathBuf,
    data: &BTreeMap<String, String>,
    node: &str,
) -> Result<Snapshot, LiveConfigError> {
    let profile = match data.get(profile::NODE_PROFILES_KEY) {
        Some(text) => profile::profile_of(&origin, text, node)?,
        None => None,
    };
    let key = |base| profile::key_for(profile.as_deref(), base);
    let generation = generation_in(&origin, data)?;
    Ok(Snapshot {
        config: data.get(&key(CONFIG_KEY)).cloned(),
        metrics: data.get(&key(METRICS_KEY)).cloned(),
        flowlogs: data.get(&key(FLOWLOGS_KEY)).cloned(),
        generation,
        origin: origin.join(key(CONFIG_KEY)),
    })
}

/// Follows ConfigMap `name` in `api`'s namespace and sends this node's snapshot on
/// every new version of it; a refused version is logged and the last good one
/// stays in force.
pub(crate) async fn watch(api: Api<ConfigMap>, namespace: String, name: String, node: String, send: Sender<Snapshot>) {
    let deliver = |origin: &Path, data: &BTreeMap<String, String>| match snapshot_from(origin.to_owned(), data, &node) {
        Ok(snapshot) => Some(snapshot),
        Err(error) => {
            tracing::warn!(%error, "configuration refused; the last good one stays in force");
            None
        }
    };
    config_map::watch(api, &namespace, &name, deliver, send).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_node_gets_its_profile_or_the_base_files() {
        let data = data(&[
            ("config.yaml", "monitor-aggregation: medium\n"),
            ("metrics.yaml", "metrics: []\n"),
            ("flowlogs.yaml", "flowLogs: []\n"),
            ("profile-abc.config.yaml", "monitor-aggregation: maximum\n"),
            ("profile-abc.metrics.yaml", "metrics: [{name: drop}]\n"),
            ("node-profiles.yaml", "gpu-1: profile-abc\n"),
            ("generation", "5"),
        ]);
        let origin = PathBuf::from("configmap sightline/sightline-agent-config");
        let base = snapshot_from(origin.clone(), &data, "node-a").unwrap();
        assert_eq!(base.config.as_deref(), Some("monitor-aggregation: medium\n"));
        assert_eq!(base.metrics.as_deref(), Some("metrics: []\n"));
        assert_eq!(base.flowlogs.as_deref(), Some("flowLogs: []\n"));
        assert_eq!(base.generation, Some(5));
        let gpu = snapshot_from(origin.clone(), &data, "gpu-1").unwrap();
        assert_eq!(gpu.config.as_deref(), Some("monitor-aggregation: maximum\n"));
        assert_eq!(gpu.metrics.as_deref(), Some("metrics: [{name: drop}]\n"));
        assert!(gpu.origin.ends_with("profile-abc.config.yaml"), "{:?}", gpu.origin);
    }

    #[test]
    fn a_bad_generation_is_refused_naming_it() {
        let origin = PathBuf::from("configmap sightline/sightline-agent-config");
        let error = snapshot_from(origin, &data(&[("generation", "v5")]), "n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("sightline-agent-config") && error.contains("v5"),
            "{error}"
        );
    }
}
