//! What a version of the configuration means for a running relay: checked exactly
//! as at start-up against the command line (which keeps winning), the settings it
//! may change live, and the ones that wait for a restart. Pure, so the rules are
//! testable without a process.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::config::{Args, ConfigError};
use crate::config_file;

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
    /// `--sort-buffer-len-max`.
    pub sort_buffer_len_max: usize,
    /// `--sort-buffer-drain-timeout`.
    pub sort_buffer_drain_timeout: Duration,
    /// `--retry-timeout`.
    pub retry_timeout: Duration,
    /// `--dial-timeout`.
    pub dial_timeout: Duration,
}

impl Tunables {
    /// The tunables as the flags set them.
    pub fn of(args: &Args) -> Self {
        Self {
            sort_buffer_len_max: args.sort_buffer_len_max,
            sort_buffer_drain_timeout: args.sort_buffer_drain_timeout,
            retry_timeout: args.retry_timeout,
            dial_timeout: args.dial_timeout,
        }
    }
}

/// Every flag's value as clap resolved it (command line, environment, file or
/// default), by long name: what two configurations are compared by.
pub type FlagValues = BTreeMap<String, Vec<OsString>>;

/// The flag values `argv` merged with `config` (when given) resolves to.
pub fn flag_values(argv: &[OsString], config: Option<(&Path, &str)>) -> Result<FlagValues, ConfigError> {
    let command = Args::command();
    let merged = match config {
        Some((origin, text)) => config_file::merge_text(&command, origin, text, argv.to_vec())?,
        None => argv.to_vec(),
    };
    let matches = command.clone().try_get_matches_from(merged)?;
    Ok(command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let values = matches
                .get_raw(arg.get_id().as_str())
                .map(|raw| raw.map(OsString::from).collect())
                .unwrap_or_default();
            Some((long.to_owned(), values))
        })
        .collect())
}

/// A new text of the configuration, checked against the command line the relay
/// started with exactly as at start-up: the settings it gives, and every flag's value.
pub fn check(argv: &[OsString], origin: &Path, text: &str) -> Result<(Args, FlagValues), ConfigError> {
    let merged = config_file::merge_text(&Args::command(), origin, text, argv.to_vec())?;
    let args = Args::try_parse_from(merged)?;
    args.validate()?;
    Ok((args, flag_values(argv, Some((origin, text)))?))
}

/// Flags whose value differs from what the relay runs and that it cannot change
/// live. Compared by resolved value, not by the file's keys: a key the command line
/// overrides, or one that only repeats the running value, needs no restart.
pub fn restart_keys(running: &FlagValues, new: &FlagValues) -> BTreeSet<String> {
    running
        .keys()
        .chain(new.keys())
        .filter(|key| !LIVE_KEYS.contains(&key.as_str()) && key.as_str() != "config")
        .filter(|key| running.get(*key) != new.get(*key))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn argv(extra: &[&str]) -> Vec<OsString> {
        [
            "sightline-relay",
            "--disable-client-tls",
            "--disable-server-tls",
            "--dial-timeout",
            "2s",
        ]
        .iter()
        .chain(extra)
        .map(OsString::from)
        .collect()
    }

    #[test]
    fn a_new_text_changes_tunables_and_names_restart_keys() {
        let path = Path::new("config.yaml");
        let running = flag_values(
            &argv(&[]),
            Some((path, "cluster-name: prod\nsort-buffer-len-max: 100\n")),
        )
        .unwrap();
        let text = "cluster-name: eu\nsort-buffer-len-max: 50\nsort-buffer-drain-timeout: 300ms\nretry-timeout: 5s\ndial-timeout: 9s\n";
        let (args, values) = check(&argv(&[]), path, text).unwrap();
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
            restart_keys(&running, &values),
            BTreeSet::from(["cluster-name".to_owned()])
        );
    }

    #[test]
    fn a_key_that_repeats_or_loses_to_the_command_line_needs_no_restart() {
        let path = Path::new("config.yaml");
        // Started from the command line alone, as in the chart with --config-map.
        let running = flag_values(&argv(&["--cluster-name", "prod"]), None).unwrap();
        let (_, values) = check(
            &argv(&["--cluster-name", "prod"]),
            path,
            "cluster-name: eu\nretry-timeout: 5s\n",
        )
        .unwrap();
        assert!(
            restart_keys(&running, &values).is_empty(),
            "the command line's cluster name wins"
        );
        let running = flag_values(&argv(&[]), None).unwrap();
        let (_, values) = check(&argv(&[]), path, "cluster-name: default\n").unwrap();
        assert!(restart_keys(&running, &values).is_empty(), "the default repeated");
        let (_, values) = check(&argv(&[]), path, "peers: [a=10.0.0.1:4244]\n").unwrap();
        assert_eq!(restart_keys(&running, &values), BTreeSet::from(["peers".to_owned()]));
    }

    #[test]
    fn bad_values_are_refused_naming_them() {
        let path = Path::new("config.yaml");
        for (text, expected) in [
            ("sort-buffer-len-max: 0\n", "--sort-buffer-len-max"),
            ("retry-timeout: soon\n", "soon"),
            ("dial_timeoutt: 1s\n", "dial_timeoutt"),
            ("[not a mapping]\n", "config.yaml"),
        ] {
            let error = check(&argv(&[]), path, text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
