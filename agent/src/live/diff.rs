//! Which keys of the `--config` file changed, and which of those a running agent
//! can apply. Pure, so the rules are testable without a process.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The `--config` keys a running agent applies without a restart (see
/// `docs/operator.md`, "Fields and when they take effect").
pub(crate) const LIVE_KEYS: &[&str] = &[
    "monitor-aggregation",
    "monitor-aggregation-interval",
    "interfaces",
    "drop-events",
    "drop-events-interval",
];

/// The keys that differ between two versions of the file, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConfigChanges {
    /// Applied at once.
    pub(crate) live: BTreeSet<String>,
    /// Logged and ignored until the agent restarts (ring capacity, listen addresses, …).
    pub(crate) restart: BTreeSet<String>,
}

impl ConfigChanges {
    /// True when the new file differs from the running one in no key at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart.is_empty()
    }
}

/// `cluster_name` and `cluster-name` are one flag.
fn normalized(entries: &Map<String, Value>) -> Map<String, Value> {
    entries
        .iter()
        .map(|(key, value)| (key.replace('_', "-"), value.clone()))
        .collect()
}

/// Compares two parsed files key by key; a key present in one only has changed
/// (removing it means "back to the default").
pub(crate) fn diff_entries(old: &Map<String, Value>, new: &Map<String, Value>) -> ConfigChanges {
    let (old, new) = (normalized(old), normalized(new));
    let mut changes = ConfigChanges::default();
    for key in old.keys().chain(new.keys()) {
        if old.get(key) == new.get(key) {
            continue;
        }
        if LIVE_KEYS.contains(&key.as_str()) {
            changes.live.insert(key.clone());
        } else {
            changes.restart.insert(key.clone());
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use sightline_common::config_file::parse_entries;

    use super::*;

    fn entries(text: &str) -> Map<String, Value> {
        parse_entries(Path::new("config.yaml"), text).unwrap()
    }

    fn set(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|key| (*key).to_owned()).collect()
    }

    const BASE: &str = "cluster-name: prod\nmonitor-aggregation: medium\nmonitor-aggregation-interval: 5s\ndrop-events: observed\ndrop-events-interval: 1s\nevent-buffer-capacity: 4095\n";

    #[test]
    fn the_same_file_in_another_spelling_changes_nothing() {
        let respelled = BASE
            .replace("cluster-name", "cluster_name")
            .replace("drop-events:", "drop_events:");
        assert!(diff_entries(&entries(BASE), &entries(&respelled)).is_empty());
    }

    #[test]
    fn live_keys_and_restart_keys_are_told_apart() {
        let new = BASE
            .replace("monitor-aggregation: medium", "monitor-aggregation: maximum")
            .replace("event-buffer-capacity: 4095", "event-buffer-capacity: 16383")
            + "interfaces: [eth0, \"lxc*\"]\n";
        let changes = diff_entries(&entries(BASE), &entries(&new));
        assert_eq!(changes.live, set(&["interfaces", "monitor-aggregation"]));
        assert_eq!(changes.restart, set(&["event-buffer-capacity"]));
    }

    #[test]
    fn a_removed_key_is_a_change_back_to_the_default() {
        let new = BASE
            .replace("drop-events-interval: 1s\n", "")
            .replace("cluster-name: prod\n", "");
        let changes = diff_entries(&entries(BASE), &entries(&new));
        assert_eq!(changes.live, set(&["drop-events-interval"]));
        assert_eq!(changes.restart, set(&["cluster-name"]));
    }

    #[test]
    fn a_list_in_another_order_is_a_change() {
        let old = entries("interfaces: [a, b]\n");
        let new = entries("interfaces: [b, a]\n");
        assert_eq!(diff_entries(&old, &new).live, set(&["interfaces"]));
    }
}
