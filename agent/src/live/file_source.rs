//! The `--config` file as a source: read every second and compared by content,
//! because the kubelet updates a mounted ConfigMap by swapping a symlink above the
//! file, which a watch on the file itself does not see.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::Sender;

use super::{LiveConfigError, Snapshot, profile};

pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The operator's `generation` key, a file next to `--config` when its ConfigMap is mounted.
pub const GENERATION_FILE: &str = "generation";

/// What the file source delivers now, and a fingerprint of it.
pub fn read(path: &Path, node: &str) -> Result<(Snapshot, u64), LiveConfigError> {
    let origin = profile::resolve_file(path, node)?;
    let config = std::fs::read_to_string(&origin).map_err(|source| {
        LiveConfigError::File(sightline_common::config_file::ConfigFileError::Read {
            path: origin.clone(),
            source,
        })
    })?;
    let generation_file = path.with_file_name(GENERATION_FILE);
    let generation = match std::fs::read_to_string(&generation_file) {
        Ok(text) => Some(text.trim().parse::<i64>().map_err(|_| LiveConfigError::Generation {
            origin: generation_file.clone(),
            value: text.trim().to_owned(),
        })?),
        Err(_) => None,
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&origin, &config, generation).hash(&mut hasher);
    let snapshot = Snapshot {
        origin,
        config: Some(config),
        metrics: None,
        flowlogs: None,
        generation,
    };
    Ok((snapshot, hasher.finish()))
}

/// Sends a snapshot whenever the file's content (or the profile it resolves to)
/// changes from `seen`. A file that cannot be read is logged once and retried.
pub async fn poll(path: PathBuf, node: String, mut seen: Option<u64>, send: Sender<Snapshot>) {
    let mut timer = tokio::time::interval(POLL_INTERVAL);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        timer.tick().await;
        match read(&path, &node) {
            Ok((snapshot, fingerprint)) => {
                failing = false;
                if seen == Some(fingerprint) {
                    continue;
                }
                seen = Some(fingerprint);
                if send.send(snapshot).await.is_err() {
                    return;
                }
            }
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "cannot read the configuration; the last good one stays in force");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_fingerprint_follows_content_and_generation() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "monitor-aggregation: low\n").unwrap();
        let (first, a) = read(&config, "node-a").unwrap();
        assert_eq!(first.generation, None);
        assert_eq!(read(&config, "node-a").unwrap().1, a, "unchanged");
        std::fs::write(dir.path().join(GENERATION_FILE), "7\n").unwrap();
        let (second, b) = read(&config, "node-a").unwrap();
        assert_eq!(second.generation, Some(7));
        assert_ne!(a, b);
        std::fs::write(&config, "monitor-aggregation: maximum\n").unwrap();
        assert_ne!(read(&config, "node-a").unwrap().1, b);
        std::fs::write(dir.path().join(GENERATION_FILE), "seven").unwrap();
        let error = read(&config, "node-a").unwrap_err().to_string();
        assert!(error.contains("generation") && error.contains("seven"), "{error}");
    }
}
