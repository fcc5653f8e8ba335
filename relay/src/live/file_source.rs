//! The `--config` file as a source, polled by the shared file poll.

use std::path::{Path, PathBuf};

use sightline_common::live_source::{LiveSourceError, config_file};
use tokio::sync::mpsc::Sender;

use super::{LiveError, Snapshot, Source};

/// What the file says now.
pub fn read(path: &Path) -> Result<Snapshot, LiveError> {
    let text = config_file::read(path, path)?;
    Ok(Snapshot::from_text(Source::File, text))
}

/// Sends what the file says whenever it differs from the last sent (or from
/// `seen`, the version the relay started with). A file that cannot be read is
/// logged once per outage and retried; a broken `generation` is the applier's to
/// refuse and count, once per broken version.
pub async fn poll(path: PathBuf, seen: Option<Snapshot>, send: Sender<Result<Snapshot, LiveError>>) {
    let read_now = move || match read(&path) {
        Err(error @ LiveError::Source(LiveSourceError::Read { .. })) => Err(error),
        version => Ok(version),
    };
    config_file::poll(read_now, fingerprint, seen.map(Ok), send).await;
}

/// Errors compare by message: the same broken version is refused once.
fn fingerprint(version: &Result<Snapshot, LiveError>) -> Result<Snapshot, String> {
    match version {
        Ok(snapshot) => Ok(snapshot.clone()),
        Err(error) => Err(error.to_string()),
    }
}
