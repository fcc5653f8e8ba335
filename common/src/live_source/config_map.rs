//! One ConfigMap, watched by name through the API, as a configuration source:
//! a change applies within seconds instead of after the kubelet's volume sync.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::mpsc::Sender;

use super::{ConfigText, GENERATION_KEY, LiveSourceError, parse_generation};

/// The key holding the `--config` file's text (as the operator renders it).
pub const CONFIG_KEY: &str = "config.yaml";

/// The operator's generation in a ConfigMap's `data`, when it says.
/// `origin` names the ConfigMap (`configmap ns/name`).
pub fn generation_in(origin: &Path, data: &BTreeMap<String, String>) -> Result<Option<i64>, LiveSourceError> {
    data.get(GENERATION_KEY)
        .map(|text| parse_generation(&origin.join(GENERATION_KEY), text))
        .transpose()
}

/// The configuration under `key` in a ConfigMap's `data`, with its generation.
/// `origin` names the ConfigMap; a missing key is a mistake named as such.
pub fn config_text(origin: &Path, data: &BTreeMap<String, String>, key: &str) -> Result<ConfigText, LiveSourceError> {
    let generation = generation_in(origin, data)?;
    let origin = origin.join(key);
    let config = data.get(key).cloned().ok_or_else(|| LiveSourceError::MissingKey {
        origin: origin.clone(),
        key: key.to_owned(),
    })?;
    Ok(ConfigText {
        origin,
        config,
        generation,
    })
}

/// Follows ConfigMap `name` in `api`'s namespace and sends what `deliver` makes
/// of each new version's `data` (`None`: nothing to send), with the origin
/// `configmap ns/name`. The watcher retries API errors with backoff; a deleted
/// ConfigMap leaves the last good configuration in force. Returns when the
/// receiver is gone.
pub async fn watch<T>(
    api: Api<ConfigMap>,
    namespace: &str,
    name: &str,
    mut deliver: impl FnMut(&Path, &BTreeMap<String, String>) -> Option<T>,
    send: Sender<T>,
) {
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
        let Some(delivered) = deliver(&origin, &config_map.data.unwrap_or_default()) else {
            continue;
        };
        if send.send(delivered).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn data<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
        BTreeMap::from(pairs.map(|(key, value)| (key.to_owned(), value.to_owned())))
    }

    #[test]
    fn the_config_key_and_generation_are_taken_and_mistakes_named() {
        let origin = Path::new("configmap sightline/sightline-relay-config");
        let text = config_text(
            origin,
            &data([("config.yaml", "retry-timeout: 5s\n"), ("generation", "3")]),
            CONFIG_KEY,
        )
        .unwrap();
        assert_eq!(text.config, "retry-timeout: 5s\n");
        assert_eq!(text.generation, Some(3));
        assert!(text.origin.ends_with("config.yaml"), "YAML by the key's extension");
        let missing = config_text(origin, &data([("generation", "3")]), CONFIG_KEY)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("sightline-relay-config") && missing.contains("config.yaml"),
            "{missing}"
        );
        let bad = config_text(origin, &data([("config.yaml", ""), ("generation", "v3")]), CONFIG_KEY)
            .unwrap_err()
            .to_string();
        assert!(bad.contains("sightline-relay-config") && bad.contains("v3"), "{bad}");
    }

    #[test]
    fn a_config_map_without_generation_says_none() {
        let origin = Path::new("configmap sightline/sightline-agent-config");
        assert_eq!(generation_in(origin, &data([("config.yaml", "")])).unwrap(), None);
        assert_eq!(generation_in(origin, &data([("generation", "5")])).unwrap(), Some(5));
    }
}
