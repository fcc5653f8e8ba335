//! The relay follows its `--config` file while it runs (the operator's relay
//! ConfigMap, mounted): the sort buffer and the timeouts apply to streams and dials
//! that start after the change; open streams keep the settings they started with.
//! Other keys need a restart and are logged; a broken file keeps the last good one.
//! The file is read every second and compared by content: the kubelet swaps a
//! symlink above a mounted file, which a watch on the file would miss.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::config::{Args, ConfigError};
use crate::config_file;
use crate::dial::Dialer;
use crate::fanout::FanoutSettings;

pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The keys a running relay applies.
pub const LIVE_KEYS: &[&str] = &[
    "sort-buffer-len-max",
    "sort-buffer-drain-timeout",
    "retry-timeout",
    "dial-timeout",
];

/// The settings a new configuration may change while the relay runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunables {
    pub sort_buffer_len_max: usize,
    pub sort_buffer_drain_timeout: Duration,
    pub retry_timeout: Duration,
    pub dial_timeout: Duration,
}

impl Tunables {
    pub fn of(args: &Args) -> Self {
        Self {
            sort_buffer_len_max: args.sort_buffer_len_max,
            sort_buffer_drain_timeout: args.sort_buffer_drain_timeout,
            retry_timeout: args.retry_timeout,
            dial_timeout: args.dial_timeout,
        }
    }
}

/// Checks a new text of the file against the command line the relay started with
/// (which keeps winning), exactly as at start-up.
pub fn check(argv: &[OsString], path: &Path, text: &str) -> Result<(Map<String, Value>, Args), ConfigError> {
    let entries = config_file::parse_entries(path, text)?;
    let merged = config_file::merge_text(&Args::command(), path, text, argv.to_vec())?;
    let args = Args::try_parse_from(merged)?;
    args.validate()?;
    Ok((entries, args))
}

/// Keys that differ from the file the relay started with and are not live.
pub fn restart_keys(startup: &Map<String, Value>, new: &Map<String, Value>) -> BTreeSet<String> {
    let normalized = |map: &Map<String, Value>| -> Map<String, Value> {
        map.iter().map(|(k, v)| (k.replace('_', "-"), v.clone())).collect()
    };
    let (startup, new) = (normalized(startup), normalized(new));
    startup
        .keys()
        .chain(new.keys())
        .filter(|key| !LIVE_KEYS.contains(&key.as_str()) && startup.get(*key) != new.get(*key))
        .cloned()
        .collect()
}

/// Where new tunables go.
pub struct Targets {
    pub fanout: watch::Sender<Arc<FanoutSettings>>,
    pub retry_timeout: watch::Sender<Duration>,
    pub dialer: Dialer,
}

impl Targets {
    pub fn apply(&self, tunables: Tunables) {
        self.fanout.send_if_modified(|current| {
            let modified = current.sort_buffer_len != tunables.sort_buffer_len_max
                || current.drain_timeout != tunables.sort_buffer_drain_timeout;
            if modified {
                *current = Arc::new(FanoutSettings {
                    sort_buffer_len: tunables.sort_buffer_len_max,
                    drain_timeout: tunables.sort_buffer_drain_timeout,
                    ..(**current).clone()
                });
            }
            modified
        });
        self.retry_timeout.send_if_modified(|current| {
            let modified = *current != tunables.retry_timeout;
            *current = tunables.retry_timeout;
            modified
        });
        self.dialer.set_timeout(tunables.dial_timeout);
    }
}

fn fingerprint(text: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Follows `path` until the task is dropped. `startup` is the text the relay started with.
pub async fn follow(path: PathBuf, argv: Vec<OsString>, startup: String, running: Tunables, targets: Targets) {
    let startup_entries = config_file::parse_entries(&path, &startup).unwrap_or_default();
    let mut seen = fingerprint(&startup);
    let mut current = running;
    let mut pending = BTreeSet::new();
    let mut timer = tokio::time::interval(POLL_INTERVAL);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if fingerprint(&text) == seen {
            continue;
        }
        seen = fingerprint(&text);
        match check(&argv, &path, &text) {
            Ok((entries, args)) => {
                let restart = restart_keys(&startup_entries, &entries);
                if restart != pending && !restart.is_empty() {
                    tracing::warn!(keys = ?restart, "these settings take effect only after a restart; the running values stay until then");
                }
                pending = restart;
                let tunables = Tunables::of(&args);
                if tunables != current {
                    targets.apply(tunables);
                    tracing::info!(?tunables, "configuration applied to new streams and dials");
                    current = tunables;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "configuration refused; the last good one stays in force");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn argv() -> Vec<OsString> {
        [
            "sightline-relay",
            "--disable-client-tls",
            "--disable-server-tls",
            "--dial-timeout",
            "2s",
        ]
        .iter()
        .map(OsString::from)
        .collect()
    }

    #[test]
    fn a_new_file_changes_tunables_and_names_restart_keys() {
        let path = Path::new("config.yaml");
        let start = "cluster-name: prod\nsort-buffer-len-max: 100\n";
        let (startup, _) = check(&argv(), path, start).unwrap();
        let text = "cluster-name: eu\nsort-buffer-len-max: 50\nsort-buffer-drain-timeout: 300ms\nretry-timeout: 5s\ndial-timeout: 9s\n";
        let (entries, args) = check(&argv(), path, text).unwrap();
        assert_eq!(
            Tunables::of(&args),
            Tunables {
                sort_buffer_len_max: 50,
                sort_buffer_drain_timeout: Duration::from_millis(300),
                retry_timeout: Duration::from_secs(5),
                dial_timeout: Duration::from_secs(2),
            },
            "the command line's --dial-timeout keeps winning"
        );
        assert_eq!(
            restart_keys(&startup, &entries),
            BTreeSet::from(["cluster-name".to_owned()])
        );
    }

    #[test]
    fn bad_values_are_refused_naming_them() {
        let path = Path::new("config.yaml");
        for (text, expected) in [
            ("sort-buffer-len-max: 0\n", "--sort-buffer-len-max"),
            ("retry-timeout: soon\n", "soon"),
            ("dial_timeoutt: 1s\n", "dial_timeoutt"),
        ] {
            let error = check(&argv(), path, text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn applying_reaches_new_streams_dials_and_the_backoff() {
        let settings = Arc::new(FanoutSettings {
            sort_buffer_len: 100,
            drain_timeout: Duration::from_secs(1),
            relay_node: "relay".into(),
            peer_refresh: Duration::from_secs(1),
        });
        let (fanout, streams) = watch::channel(settings.clone());
        let (retry_timeout, retry) = watch::channel(Duration::from_secs(30));
        let dialer = Dialer::new(None, Duration::from_secs(5));
        let targets = Targets {
            fanout,
            retry_timeout,
            dialer: dialer.clone(),
        };
        targets.apply(Tunables {
            sort_buffer_len_max: 10,
            sort_buffer_drain_timeout: Duration::from_millis(200),
            retry_timeout: Duration::from_secs(3),
            dial_timeout: Duration::from_millis(700),
        });
        let now = streams.borrow().clone();
        assert_eq!(
            (now.sort_buffer_len, now.drain_timeout),
            (10, Duration::from_millis(200))
        );
        assert_eq!(now.relay_node, "relay");
        assert_eq!(
            settings.sort_buffer_len, 100,
            "a stream's own settings do not change under it"
        );
        assert_eq!(*retry.borrow(), Duration::from_secs(3));
        assert_eq!(dialer.timeout(), Duration::from_millis(700));
    }
}
