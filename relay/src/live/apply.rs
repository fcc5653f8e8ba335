//! The one place a new version of the configuration is checked and applied,
//! whichever source delivered it.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::settings::{FlagValues, Tunables, check, restart_keys};
use super::{LiveError, Snapshot, Source};
use crate::dial::Dialer;
use crate::fanout::FanoutSettings;
use crate::metrics::Reloads;

/// Where new tunables go.
pub struct Targets {
    /// Where new sort buffer settings go (new streams take them).
    pub fanout: watch::Sender<Arc<FanoutSettings>>,
    /// Where a new retry timeout goes (the pool's redial loop).
    pub retry_timeout: watch::Sender<Duration>,
    /// The dialer whose timeout a new `dial-timeout` changes.
    pub dialer: Dialer,
}

impl Targets {
    /// Hands each tunable to the part that uses it.
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

/// What one snapshot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The same text and generation as the last one checked (a watch's relist,
    /// the mounted file catching up): nothing to do, nothing counted.
    Seen,
    /// The file's version is older than the generation the ConfigMap gave: the
    /// mounted file lags the API by about a minute and must not take the newer
    /// settings back. (The ConfigMap itself is always followed: a SightlineConfig
    /// deleted and created again starts over at generation 1.)
    Outdated {
        /// The generation the file carries.
        generation: i64,
        /// The newer generation already in force.
        in_force: i64,
    },
    /// Checked and in force; `tunables` when they changed.
    Applied {
        /// The new tunables, or `None` when they did not change.
        tunables: Option<Tunables>,
        /// Flags that changed but apply only after a restart.
        restart: BTreeSet<String>,
    },
}

/// Holds what runs and hands new values to the parts that use them.
pub struct Applier {
    argv: Vec<OsString>,
    /// Every flag's value as the process started: a restart-only flag whose new
    /// value differs waits for a restart.
    startup: FlagValues,
    pending_restart: BTreeSet<String>,
    current: Tunables,
    /// The generation the ConfigMap last gave.
    api_generation: Option<i64>,
    last_checked: Option<(String, Option<i64>)>,
    /// The generation in force, for the Lease: changes only when a version naming
    /// one is applied, so a refused version leaves the relay counted as behind.
    generation: watch::Sender<Option<i64>>,
    targets: Targets,
    reloads: Reloads,
}

impl Applier {
    /// `argv` is the command line the relay started with, `startup` its flag
    /// values then, `running` the tunables in force.
    pub fn new(
        argv: Vec<OsString>,
        startup: FlagValues,
        running: Tunables,
        targets: Targets,
        reloads: Reloads,
    ) -> Self {
        Self {
            argv,
            startup,
            pending_restart: BTreeSet::new(),
            current: running,
            api_generation: None,
            last_checked: None,
            generation: watch::channel(None).0,
            targets,
            reloads,
        }
    }

    /// Remembers the text the relay started with, so its first delivery is not a
    /// change; its generation is the one in force.
    pub fn started_from(&mut self, snapshot: &Snapshot) {
        self.last_checked = Some((snapshot.config.clone(), snapshot.generation));
        self.in_force(snapshot.generation);
    }

    /// The generation in force, for the Lease; `None` until a source names one.
    pub fn generation(&self) -> watch::Receiver<Option<i64>> {
        self.generation.subscribe()
    }

    fn in_force(&self, generation: Option<i64>) {
        if let Some(generation) = generation {
            self.generation.send_if_modified(|running| {
                let modified = *running != Some(generation);
                *running = Some(generation);
                modified
            });
        }
    }

    /// Checks `snapshot` whole, then applies its live settings; a refused one
    /// changes nothing.
    pub fn apply(&mut self, snapshot: &Snapshot) -> Result<Applied, LiveError> {
        let key = (snapshot.config.clone(), snapshot.generation);
        if self.last_checked.as_ref() == Some(&key) {
            return Ok(Applied::Seen);
        }
        if let (Source::File, Some(generation), Some(in_force)) =
            (snapshot.source, snapshot.generation, self.api_generation)
            && generation < in_force
        {
            return Ok(Applied::Outdated { generation, in_force });
        }
        self.last_checked = Some(key);
        let (args, values) = check(&self.argv, &snapshot.origin, &snapshot.config)?;
        let restart = restart_keys(&self.startup, &values);
        let tunables = Tunables::of(&args);
        let changed = (tunables != self.current).then_some(tunables);
        if changed.is_some() {
            self.targets.apply(tunables);
            self.current = tunables;
        }
        if snapshot.source == Source::ConfigMap {
            self.api_generation = snapshot.generation;
        }
        self.in_force(snapshot.generation);
        Ok(Applied::Applied {
            tunables: changed,
            restart,
        })
    }

    /// A source's delivery: a version to apply, or one its source already found
    /// broken (counted and logged like any refused version).
    pub fn receive(&mut self, delivered: Result<Snapshot, LiveError>) {
        match delivered {
            Ok(snapshot) => self.apply_logged(&snapshot),
            Err(error) => self.refused(&error),
        }
    }

    fn refused(&self, error: &LiveError) {
        self.reloads.error();
        tracing::warn!(%error, "configuration refused; the last good one stays in force");
    }

    /// [`Self::apply`], logging what changed or why it was refused, and counting
    /// each version checked in `sightline_relay_config_reloads_total{result}`.
    pub fn apply_logged(&mut self, snapshot: &Snapshot) {
        let origin = snapshot.origin.display();
        match self.apply(snapshot) {
            Ok(Applied::Seen) => {}
            Ok(Applied::Outdated { generation, in_force }) => {
                tracing::debug!(%origin, generation, in_force, "older configuration ignored");
            }
            Ok(Applied::Applied { tunables, restart }) => {
                self.reloads.success();
                if let Some(tunables) = tunables {
                    tracing::info!(%origin, generation = ?snapshot.generation, ?tunables, "configuration applied to new streams and dials");
                }
                if restart != self.pending_restart && !restart.is_empty() {
                    tracing::warn!(keys = ?restart, "these settings take effect only after a restart; the running values stay until then");
                }
                self.pending_restart = restart;
            }
            Err(error) => self.refused(&error),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::PathBuf;

    use super::*;
    use crate::live::settings::flag_values;
    use crate::metrics::RelayMetrics;

    fn argv() -> Vec<OsString> {
        ["sightline-relay", "--disable-client-tls", "--disable-server-tls"]
            .iter()
            .map(OsString::from)
            .collect()
    }

    fn settings() -> Arc<FanoutSettings> {
        Arc::new(FanoutSettings {
            sort_buffer_len: 100,
            drain_timeout: Duration::from_secs(1),
            relay_node: "relay".into(),
            peer_refresh: Duration::from_secs(1),
        })
    }

    fn snapshot(source: Source, text: &str, generation: Option<i64>) -> Snapshot {
        Snapshot {
            source,
            origin: PathBuf::from("configmap sightline/sightline-relay-config/config.yaml"),
            config: text.to_owned(),
            generation,
        }
    }

    #[test]
    fn applying_reaches_new_streams_dials_and_the_backoff() {
        let settings = settings();
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

    #[test]
    fn a_broken_version_keeps_the_last_good_and_an_older_generation_is_ignored() {
        let (fanout, streams) = watch::channel(settings());
        let (retry_timeout, _retry) = watch::channel(Duration::from_secs(30));
        let targets = Targets {
            fanout,
            retry_timeout,
            dialer: Dialer::new(None, Duration::from_secs(5)),
        };
        let metrics = RelayMetrics::new();
        let startup = flag_values(&argv(), None).unwrap();
        let running = Tunables {
            sort_buffer_len_max: 100,
            sort_buffer_drain_timeout: Duration::from_secs(1),
            retry_timeout: Duration::from_secs(30),
            dial_timeout: Duration::from_secs(5),
        };
        let mut applier = Applier::new(argv(), startup, running, targets, metrics.config_reloads());
        let sort_buffer = || streams.borrow().sort_buffer_len;
        let generation = applier.generation();
        assert_eq!(*generation.borrow(), None, "no source has named a generation yet");

        applier.apply_logged(&snapshot(Source::ConfigMap, "sort-buffer-len-max: 7\n", Some(5)));
        assert_eq!(sort_buffer(), 7);
        assert_eq!(*generation.borrow(), Some(5));
        applier.apply_logged(&snapshot(Source::ConfigMap, "sort-buffer-len-max: 7\n", Some(5)));
        applier.apply_logged(&snapshot(Source::ConfigMap, "sort-buffer-len-max: 0\n", Some(6)));
        assert_eq!(sort_buffer(), 7, "a refused version changes nothing");
        assert_eq!(*generation.borrow(), Some(5), "a refused generation is not reported");
        assert!(matches!(
            applier.apply(&snapshot(Source::File, "sort-buffer-len-max: 3\n", Some(4))),
            Ok(Applied::Outdated {
                generation: 4,
                in_force: 5
            })
        ));
        assert_eq!(sort_buffer(), 7, "the lagging file does not take generation 5 back");
        assert_eq!(*generation.borrow(), Some(5));
        applier.apply_logged(&snapshot(Source::File, "sort-buffer-len-max: 9\n", Some(7)));
        assert_eq!(sort_buffer(), 9, "the file at a newer generation applies");
        assert_eq!(*generation.borrow(), Some(7));
        // The SightlineConfig deleted and created again: the ConfigMap starts over.
        applier.apply_logged(&snapshot(Source::ConfigMap, "sort-buffer-len-max: 11\n", Some(1)));
        assert_eq!(sort_buffer(), 11, "the ConfigMap is always followed");
        assert_eq!(*generation.borrow(), Some(1));
        let text = metrics.encode();
        assert!(
            text.contains("sightline_relay_config_reloads_total{result=\"success\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("sightline_relay_config_reloads_total{result=\"error\"} 1"),
            "{text}"
        );
    }
}
