//! The `--config` file as a configuration source: read every second and compared
//! by content, because the kubelet updates a mounted ConfigMap by swapping a
//! symlink above the file, which a watch on the file itself does not see.

use std::fmt::Display;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc::Sender;

use super::{ConfigText, GENERATION_KEY, LiveSourceError, parse_generation};

/// How often the file is read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What file `config` says now, with the generation in the `generation` file
/// next to `flag_path` (the `--config` path; `config` may be a file chosen
/// from it, in the same mounted directory). No generation file: `None`.
pub fn read(config: &Path, flag_path: &Path) -> Result<ConfigText, LiveSourceError> {
    let text = std::fs::read_to_string(config).map_err(|source| LiveSourceError::Read {
        path: config.to_owned(),
        source,
    })?;
    let generation_file = flag_path.with_file_name(GENERATION_KEY);
    let generation = match std::fs::read_to_string(&generation_file) {
        Ok(value) => Some(parse_generation(&generation_file, &value)?),
        Err(_) => None,
    };
    Ok(ConfigText {
        origin: config.to_owned(),
        config: text,
        generation,
    })
}

/// Calls `read` every [`POLL_INTERVAL`] and sends its version whenever the
/// version's `fingerprint` differs from the last sent (or from `seen`, the one
/// the binary started with). An `Err` from `read` means the file cannot be read
/// now: logged once per outage and retried, the last good configuration stays in
/// force. Returns when the receiver is gone.
pub async fn poll<T, K, E>(
    mut read: impl FnMut() -> Result<T, E>,
    fingerprint: impl Fn(&T) -> K,
    mut seen: Option<K>,
    send: Sender<T>,
) where
    K: PartialEq,
    E: Display,
{
    let mut timer = tokio::time::interval(POLL_INTERVAL);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        timer.tick().await;
        let version = match read() {
            Ok(version) => version,
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "cannot read the configuration; the last good one stays in force");
                }
                failing = true;
                continue;
            }
        };
        failing = false;
        let print = fingerprint(&version);
        if seen.as_ref() == Some(&print) {
            continue;
        }
        seen = Some(print);
        if send.send(version).await.is_err() {
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
        let first = read(&config, &config).unwrap();
        assert_eq!(
            (first.config.as_str(), first.generation),
            ("sort-buffer-len-max: 5\n", None)
        );
        std::fs::write(dir.path().join(GENERATION_KEY), "7\n").unwrap();
        assert_eq!(read(&config, &config).unwrap().generation, Some(7));
        std::fs::write(dir.path().join(GENERATION_KEY), "seven").unwrap();
        let error = read(&config, &config).unwrap_err().to_string();
        assert!(error.contains("generation") && error.contains("seven"), "{error}");
        let missing = read(&dir.path().join("absent.yaml"), &config).unwrap_err();
        assert!(matches!(missing, LiveSourceError::Read { .. }), "{missing}");
    }

    /// Real time (common's tokio has no paused clock): a slow machine polls less
    /// often, which can only make the "nothing sent" checks weaker, never fail.
    #[tokio::test]
    async fn a_version_is_sent_once_per_change_and_outages_send_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "a: 1\n").unwrap();
        let path = config.clone();
        let (send, mut receive) = tokio::sync::mpsc::channel(8);
        let seen = Some(read(&config, &config).unwrap());
        let task = tokio::spawn(poll(move || read(&path, &path), Clone::clone, seen, send));
        tokio::time::sleep(POLL_INTERVAL * 2).await;
        assert!(
            receive.try_recv().is_err(),
            "the version started with is not sent again"
        );
        std::fs::remove_file(&config).unwrap();
        tokio::time::sleep(POLL_INTERVAL * 2).await;
        assert!(receive.try_recv().is_err(), "an unreadable file sends nothing");
        std::fs::write(&config, "a: 2\n").unwrap();
        let changed = tokio::time::timeout(POLL_INTERVAL * 10, receive.recv()).await;
        assert_eq!(changed.unwrap().unwrap().config, "a: 2\n");
        tokio::time::sleep(POLL_INTERVAL * 2).await;
        assert!(receive.try_recv().is_err(), "an unchanged file is sent once");
        task.abort();
    }
}
