//! The `--config` file as a source: read every second and compared by content,
//! because the kubelet updates a mounted ConfigMap by swapping a symlink above the
//! file, which a watch on the file itself does not see.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc::Sender;

use super::{LiveError, Snapshot, Source, parse_generation};

pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The operator's `generation` key, a file next to `--config` when its ConfigMap is mounted.
pub const GENERATION_FILE: &str = "generation";

/// What the file says now.
pub fn read(path: &Path) -> Result<Snapshot, LiveError> {
    let config = std::fs::read_to_string(path).map_err(|source| LiveError::Read {
        path: path.to_owned(),
        source,
    })?;
    let generation_file = path.with_file_name(GENERATION_FILE);
    let generation = match std::fs::read_to_string(&generation_file) {
        Ok(text) => Some(parse_generation(&generation_file, &text)?),
        Err(_) => None,
    };
    Ok(Snapshot {
        source: Source::File,
        origin: path.to_owned(),
        config,
        generation,
    })
}

/// Sends what the file says whenever it differs from the last sent (or from
/// `seen`, the version the relay started with). A file that cannot be read is
/// logged once per outage and retried; a broken `generation` is the applier's to
/// refuse and count, once per broken version.
pub async fn poll(path: PathBuf, seen: Option<Snapshot>, send: Sender<Result<Snapshot, LiveError>>) {
    let mut timer = tokio::time::interval(POLL_INTERVAL);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Result<Snapshot, String>> = seen.map(Ok);
    let mut failing = false;
    loop {
        timer.tick().await;
        let result = read(&path);
        if let Err(error @ LiveError::Read { .. }) = &result {
            if !failing {
                tracing::warn!(%error, "cannot read the configuration; the last good one stays in force");
            }
            failing = true;
            continue;
        }
        failing = false;
        let version = result.as_ref().map(Clone::clone).map_err(ToString::to_string);
        if last.as_ref() == Some(&version) {
            continue;
        }
        last = Some(version);
        if send.send(result).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_file_and_its_generation_are_read_and_a_bad_generation_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "sort-buffer-len-max: 5\n").unwrap();
        let first = read(&config).unwrap();
        assert_eq!(
            (first.config.as_str(), first.generation),
            ("sort-buffer-len-max: 5\n", None)
        );
        std::fs::write(dir.path().join(GENERATION_FILE), "7\n").unwrap();
        assert_eq!(read(&config).unwrap().generation, Some(7));
        std::fs::write(dir.path().join(GENERATION_FILE), "seven").unwrap();
        let error = read(&config).unwrap_err().to_string();
        assert!(error.contains("generation") && error.contains("seven"), "{error}");
    }
}
