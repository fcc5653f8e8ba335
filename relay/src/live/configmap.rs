//! The operator's relay ConfigMap as a source, watched by name through the API.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use sightline_common::live_source::config_map::{self, CONFIG_KEY};
use tokio::sync::mpsc::Sender;

use super::{LiveError, Snapshot, Source};

/// The configuration in a ConfigMap's `data`. `origin` names the ConfigMap.
pub fn snapshot_from(origin: &Path, data: &BTreeMap<String, String>) -> Result<Snapshot, LiveError> {
    let text = config_map::config_text(origin, data, CONFIG_KEY)?;
    Ok(Snapshot::from_text(Source::ConfigMap, text))
}

/// Follows ConfigMap `name` in `api`'s namespace and sends each new version of
/// it, broken ones too: refusing and counting them is the applier's job.
pub async fn watch(api: Api<ConfigMap>, namespace: String, name: String, send: Sender<Result<Snapshot, LiveError>>) {
    config_map::watch(
        api,
        &namespace,
        &name,
        |origin, data| Some(snapshot_from(origin, data)),
        send,
    )
    .await;
}
