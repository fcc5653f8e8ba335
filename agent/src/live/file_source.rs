//! The `--config` file as a source: read every second and compared by content,
//! because the kubelet updates a mounted ConfigMap by swapping a symlink above the
//! file, which a watch on the file itself does not see.

use std::path::{Path, PathBuf};

use sightline_common::config_file::ConfigFileError;
use sightline_common::live_source::{LiveSourceError, config_file};
use tokio::sync::mpsc::Sender;

use super::{LiveConfigError, Snapshot, profile};

/// What the file source delivers now: the node's profile file when the profiles
/// file next to `path` names the node, with the generation next to `path`.
pub(crate) fn read(path: &Path, node: &str) -> Result<Snapshot, LiveConfigError> {
    let origin = profile::resolve_file(path, node)?;
    let text = config_file::read(&origin, path).map_err(|error| match error {
        // Said like the startup read of `--config` says it.
        LiveSourceError::Read { path, source } => LiveConfigError::File(ConfigFileError::Read { path, source }),
        other => LiveConfigError::Source(other),
    })?;
    Ok(Snapshot {
        origin: text.origin,
        config: Some(text.config),
        metrics: None,
        flowlogs: None,
        generation: text.generation,
    })
}

/// Sends a snapshot whenever the file's content (or the profile it resolves to,
/// or the generation) changes from `seen`. A file that cannot be read, or a
/// broken generation, is logged once and retried.
pub(crate) async fn poll(path: PathBuf, node: String, seen: Option<Snapshot>, send: Sender<Snapshot>) {
    config_file::poll(move || read(&path, &node), Clone::clone, seen, send).await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_profile_named_for_the_node_is_read_with_the_generation_next_to_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "monitor-aggregation: low\n").unwrap();
        std::fs::write(
            dir.path().join("profile-abc.config.yaml"),
            "monitor-aggregation: maximum\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("node-profiles.yaml"), "gpu-1: profile-abc\n").unwrap();
        std::fs::write(dir.path().join("generation"), "7\n").unwrap();
        let base = read(&config, "node-a").unwrap();
        assert_eq!(base.config.as_deref(), Some("monitor-aggregation: low\n"));
        assert_eq!(base.generation, Some(7));
        let gpu = read(&config, "gpu-1").unwrap();
        assert_eq!(gpu.config.as_deref(), Some("monitor-aggregation: maximum\n"));
        assert_eq!(gpu.generation, Some(7), "the generation sits next to --config");
        assert!(gpu.origin.ends_with("profile-abc.config.yaml"), "{:?}", gpu.origin);
        std::fs::write(dir.path().join("generation"), "seven").unwrap();
        let error = read(&config, "node-a").unwrap_err().to_string();
        assert!(error.contains("generation") && error.contains("seven"), "{error}");
    }
}
