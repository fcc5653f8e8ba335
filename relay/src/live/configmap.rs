//! The operator's relay ConfigMap as a source, watched by name through the API.

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc::Sender;

use super::{LiveError, Snapshot, Source, parse_generation};

/// The key holding the `--config` file's text (as the operator renders it).
pub const CONFIG_KEY: &str = "config.yaml";
/// The key holding the SightlineConfig generation the text was rendered from.
pub const GENERATION_KEY: &str = "generation";

/// The configuration in a ConfigMap's `data`. `origin` names the ConfigMap.
pub fn snapshot_from(origin: &std::path::Path, data: &BTreeMap<String, String>) -> Result<Snapshot, LiveError> {
    let origin = origin.join(CONFIG_KEY);
    let config = data.get(CONFIG_KEY).cloned().ok_or_else(|| LiveError::MissingKey {
        origin: origin.clone(),
        key: CONFIG_KEY,
    })?;
    let generation = data
        .get(GENERATION_KEY)
        .map(|text| parse_generation(&origin.with_file_name(GENERATION_KEY), text))
        .transpose()?;
    Ok(Snapshot {
        source: Source::ConfigMap,
        origin,
        config,
        generation,
    })
}

/// Follows ConfigMap `name` in `api`'s namespace and sends each new version of
/// it. The watcher retries API errors with backoff; a deleted ConfigMap leaves the
/// last good configuration in force.
pub async fn watch(api: Api<ConfigMap>, namespace: String, name: String, send: Sender<Result<Snapshot, LiveError>>) {
    let origin = PathBuf::from(format!("configmap {namespace}/{name}"));
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut last_version = None;
    while let Some(event) = events.next().await {
        let config_map = match event {
            Ok(Event::Apply(config_map) | Event::InitApply(config_map)) => config_map,
            Ok(Event::Delete(_)) => {
                tracing::warn!(origin = %origin.display(), "the configuration ConfigMap was deleted; the last good configuration stays in force");
                continue;
            }
            Ok(Event::Init | Event::InitDone) => continue,
            Err(error) => {
                tracing::warn!(%error, "watching the configuration ConfigMap");
                continue;
            }
        };
        // A relist repeats the version already sent.
        let version = config_map.metadata.resource_version.clone();
        if version.is_some() && version == last_version {
            continue;
        }
        last_version = version;
        let delivered = snapshot_from(&origin, &config_map.data.unwrap_or_default());
        if send.send(delivered).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_config_key_and_generation_are_taken_and_mistakes_named() {
        let origin = Path::new("configmap sightline/sightline-relay-config");
        let snapshot = snapshot_from(
            origin,
            &data(&[("config.yaml", "retry-timeout: 5s\n"), ("generation", "3")]),
        )
        .unwrap();
        assert_eq!(snapshot.config, "retry-timeout: 5s\n");
        assert_eq!(snapshot.generation, Some(3));
        assert!(snapshot.origin.ends_with("config.yaml"), "YAML by the key's extension");
        let missing = snapshot_from(origin, &data(&[("generation", "3")]))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("sightline-relay-config") && missing.contains("config.yaml"),
            "{missing}"
        );
        let bad = snapshot_from(origin, &data(&[("config.yaml", ""), ("generation", "v3")]))
            .unwrap_err()
            .to_string();
        assert!(bad.contains("sightline-relay-config") && bad.contains("v3"), "{bad}");
    }
}
