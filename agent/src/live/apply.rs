//! The one place a new configuration is checked and applied. Everything is
//! checked before anything changes, so a broken part keeps the whole last good
//! configuration in force.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::CommandFactory;
use serde_json::{Map, Value};
use sightline_common::config_file;
use tokio::sync::watch;

use super::diff::{ConfigChanges, diff_entries};
use super::{LiveConfigError, Snapshot};
use crate::cli::Args;
use crate::datapath::LiveDatapath;
use crate::export::DynamicExporters;
use crate::metrics::dynamic::Reloads;
use crate::metrics::runtime::MetricsReloader;

/// What one snapshot changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) changes: ConfigChanges,
    pub(crate) metrics_changed: bool,
    pub(crate) flowlogs_changed: bool,
}

/// Holds what runs and hands new values to the parts that use them.
pub(crate) struct Applier {
    argv: Vec<OsString>,
    /// The file's keys the process started with: a restart-only key that differs
    /// from them waits for a restart.
    startup_entries: Map<String, Value>,
    entries: Map<String, Value>,
    pending_restart: BTreeSet<String>,
    metrics_text: Option<String>,
    datapath: watch::Sender<LiveDatapath>,
    metrics: Option<MetricsReloader>,
    generation: watch::Sender<Option<i64>>,
    reloads: Option<Reloads>,
    flowlogs: Option<DynamicExporters>,
    /// `--flowlogs-config-path` is set: that file owns the exporters.
    flowlogs_fixed: bool,
    flowlogs_text: Option<String>,
}

impl Applier {
    /// `argv` is the command line the agent started with (it keeps winning over the
    /// file); `config` the file's text at start, when there is one.
    pub(crate) fn new(
        argv: Vec<OsString>,
        args: &Args,
        config: Option<(PathBuf, String)>,
    ) -> Result<Self, LiveConfigError> {
        let entries = match &config {
            Some((origin, text)) => config_file::parse_entries(origin, text)?,
            None => Map::new(),
        };
        Ok(Self {
            argv,
            startup_entries: entries.clone(),
            entries,
            pending_restart: BTreeSet::new(),
            metrics_text: None,
            datapath: watch::channel(args.datapath.live()).0,
            metrics: None,
            generation: watch::channel(None).0,
            reloads: None,
            flowlogs: None,
            flowlogs_fixed: false,
            flowlogs_text: None,
        })
    }

    /// Lets the dynamic metrics YAML reload the metrics pipeline, counting each
    /// reload (success or refusal) in `reloads`.
    pub(crate) fn with_metrics(mut self, metrics: MetricsReloader, reloads: Reloads) -> Self {
        self.metrics = Some(metrics);
        self.reloads = Some(reloads);
        self
    }

    /// Hands the configuration's `flowlogs.yaml` to `exporters`, unless
    /// `fixed_by_flag` (a `--flowlogs-config-path` file owns them then).
    pub(crate) fn with_flowlogs(mut self, exporters: DynamicExporters, fixed_by_flag: bool) -> Self {
        self.flowlogs = Some(exporters);
        self.flowlogs_fixed = fixed_by_flag;
        self
    }

    /// The datapath's settings, for `datapath::run_live`.
    pub(crate) fn datapath(&self) -> watch::Receiver<LiveDatapath> {
        self.datapath.subscribe()
    }

    /// The generation in force, for the Lease; `None` until a source names one.
    pub(crate) fn generation(&self) -> watch::Receiver<Option<i64>> {
        self.generation.subscribe()
    }

    /// Applies `snapshot`, logging what changed, or logs why it was refused; the
    /// outcome is counted in `sightline_agent_config_reloads_total{result}`.
    pub(crate) fn apply_logged(&mut self, snapshot: &Snapshot) {
        let result = self.apply(snapshot);
        let outcome = if result.is_ok() { "success" } else { "error" };
        match result {
            Ok(applied) if applied.changes.is_empty() && !applied.metrics_changed && !applied.flowlogs_changed => {
                return;
            }
            Ok(applied) => tracing::info!(
                origin = %snapshot.origin.display(),
                generation = ?snapshot.generation,
                live = ?applied.changes.live,
                metrics = applied.metrics_changed,
                flowlogs = applied.flowlogs_changed,
                "configuration applied"
            ),
            Err(error) => {
                tracing::warn!(%error, "configuration refused; the last good one stays in force");
            }
        }
        if let Some(reloads) = &self.reloads {
            reloads.get_or_create(&vec![("result", outcome)]).inc();
        }
    }

    /// Checks every part of `snapshot`, then applies the live ones.
    pub(crate) fn apply(&mut self, snapshot: &Snapshot) -> Result<Applied, LiveConfigError> {
        let origin = &snapshot.origin;
        let parsed = match &snapshot.config {
            Some(text) => {
                let entries = config_file::parse_entries(origin, text)?;
                let merged = config_file::merge_text(&Args::command(), origin, text, self.argv.clone())?;
                let args = <Args as clap::Parser>::try_parse_from(merged).map_err(|source| LiveConfigError::Flags {
                    origin: origin.clone(),
                    source: Box::new(source),
                })?;
                Some((entries, args))
            }
            None => None,
        };
        let metrics_text = snapshot
            .metrics
            .as_ref()
            .filter(|text| self.metrics_text.as_ref() != Some(*text));
        let new_metrics = match (metrics_text, &self.metrics) {
            (Some(_), Some(reloader)) if reloader.fixed_by_flag() => {
                tracing::warn!("--metrics is set on the command line; the configuration's metrics are ignored");
                None
            }
            (Some(text), Some(reloader)) => Some((text.clone(), reloader.parse(origin, text)?)),
            _ => None,
        };
        let flowlogs_text = snapshot
            .flowlogs
            .as_ref()
            .filter(|text| self.flowlogs_text.as_ref() != Some(*text));
        let new_flowlogs = match (flowlogs_text, &self.flowlogs) {
            (Some(_), Some(_)) if self.flowlogs_fixed => {
                tracing::warn!("--flowlogs-config-path is set; the configuration's flowlogs.yaml is ignored");
                None
            }
            (Some(text), Some(_)) => {
                let origin = origin
                    .with_file_name(super::configmap::FLOWLOGS_KEY)
                    .display()
                    .to_string();
                crate::export::dynamic::parse(&origin, text)?;
                Some((origin, text.clone()))
            }
            _ => None,
        };

        let mut applied = Applied::default();
        if let Some((entries, args)) = parsed {
            applied.changes = diff_entries(&self.entries, &entries);
            let pending = diff_entries(&self.startup_entries, &entries).restart;
            if pending != self.pending_restart {
                if !pending.is_empty() {
                    tracing::warn!(keys = ?pending, "these settings take effect only after a restart; the running values stay until then");
                }
                self.pending_restart = pending;
            }
            applied.changes.restart.clear();
            applied.changes.restart.extend(self.pending_restart.iter().cloned());
            let live = args.datapath.live();
            self.datapath.send_if_modified(|running| {
                let modified = *running != live;
                *running = live;
                modified
            });
            self.entries = entries;
        }
        if let (Some((text, metrics)), Some(reloader)) = (new_metrics, &self.metrics) {
            reloader.apply(metrics);
            self.metrics_text = Some(text);
            applied.metrics_changed = true;
        }
        if let (Some((origin, text)), Some(exporters)) = (new_flowlogs, &self.flowlogs) {
            exporters.apply(&origin, &text)?;
            self.flowlogs_text = Some(text);
            applied.flowlogs_changed = true;
        }
        if let Some(generation) = snapshot.generation {
            self.generation.send_if_modified(|running| {
                let modified = *running != Some(generation);
                *running = Some(generation);
                modified
            });
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::datapath::AggregationLevel;

    const START: &str = "monitor-aggregation: medium\nevent-buffer-capacity: 4095\n";

    fn applier(argv: &[&str]) -> Applier {
        let argv: Vec<OsString> = std::iter::once("sightline-agent")
            .chain(argv.iter().copied())
            .map(OsString::from)
            .collect();
        let args = <Args as clap::Parser>::try_parse_from(&argv).unwrap();
        Applier::new(argv, &args, Some((PathBuf::from("config.yaml"), START.to_owned()))).unwrap()
    }

    fn config(text: &str, generation: Option<i64>) -> Snapshot {
        Snapshot {
            origin: Path::new("config.yaml").to_owned(),
            config: Some(text.to_owned()),
            metrics: None,
            flowlogs: None,
            generation,
        }
    }

    #[test]
    fn a_live_change_reaches_the_datapath_and_the_generation_is_reported() {
        let mut applier = applier(&[]);
        let datapath = applier.datapath();
        let generation = applier.generation();
        let applied = applier
            .apply(&config(
                "monitor-aggregation: maximum\nmonitor-aggregation-interval: 2s\nevent-buffer-capacity: 4095\n",
                Some(3),
            ))
            .unwrap();
        assert_eq!(applied.changes.live.len(), 2, "{applied:?}");
        assert!(applied.changes.restart.is_empty());
        let live = datapath.borrow().clone();
        assert_eq!(live.monitor_aggregation, AggregationLevel::Maximum);
        assert_eq!(live.monitor_aggregation_interval, Duration::from_secs(2));
        assert_eq!(*generation.borrow(), Some(3));
    }

    #[test]
    fn a_broken_configuration_keeps_the_last_good_one() {
        let mut applier = applier(&[]);
        let datapath = applier.datapath();
        let generation = applier.generation();
        applier.apply(&config("monitor-aggregation: low\n", Some(2))).unwrap();
        for broken in [
            "monitor-aggregation: sometimes\n",
            "monitor-aggregation-interval: soon\n",
            "no-such-flag: 1\n",
            "monitor-aggregation: [unclosed\n",
        ] {
            let error = applier.apply(&config(broken, Some(9))).unwrap_err().to_string();
            assert!(error.contains("config.yaml"), "{broken:?}: {error}");
        }
        assert_eq!(datapath.borrow().monitor_aggregation, AggregationLevel::Low);
        assert_eq!(*generation.borrow(), Some(2), "a refused generation is not reported");
    }

    #[test]
    fn restart_only_keys_wait_and_live_ones_still_apply() {
        let mut applier = applier(&[]);
        let datapath = applier.datapath();
        let applied = applier
            .apply(&config(
                "monitor-aggregation: none\nevent-buffer-capacity: 16383\nlisten-address: ':5000'\n",
                None,
            ))
            .unwrap();
        assert_eq!(
            applied.changes.restart.iter().map(String::as_str).collect::<Vec<_>>(),
            ["event-buffer-capacity", "listen-address"]
        );
        assert_eq!(datapath.borrow().monitor_aggregation, AggregationLevel::None);
        let applied = applier.apply(&config(START, None)).unwrap();
        assert!(applied.changes.restart.is_empty(), "back to what runs: nothing waits");
    }

    #[test]
    fn the_command_line_keeps_winning() {
        let mut applier = applier(&["--monitor-aggregation", "low"]);
        let datapath = applier.datapath();
        applier.apply(&config("monitor-aggregation: maximum\n", None)).unwrap();
        assert_eq!(datapath.borrow().monitor_aggregation, AggregationLevel::Low);
    }

    #[test]
    fn flowlogs_yaml_starts_exporters_and_a_broken_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let exporters = DynamicExporters::new("node-a".into(), None);
        let mut applier = applier(&[]).with_flowlogs(exporters.clone(), false);
        let good = format!(
            "flowLogs:\n  - name: all\n    filePath: {}\n",
            dir.path().join("all.log").display()
        );
        let snapshot = |text: &str| Snapshot {
            origin: Path::new("configmap sightline/agent/config.yaml").to_owned(),
            flowlogs: Some(text.to_owned()),
            ..Snapshot::default()
        };
        let applied = applier.apply(&snapshot(&good)).unwrap();
        assert!(applied.flowlogs_changed);
        assert_eq!(exporters.running(), ["all"]);
        let error = applier
            .apply(&snapshot(
                "flowLogs:\n  - name: all\n    filePath: /x\n    fieldMask: [nope]\n",
            ))
            .unwrap_err()
            .to_string();
        assert!(error.contains("flowlogs.yaml") && error.contains("nope"), "{error}");
        assert_eq!(exporters.running(), ["all"], "the last good exporters keep running");
        assert!(
            !applier.apply(&snapshot(&good)).unwrap().flowlogs_changed,
            "same text, nothing to do"
        );
        applier.apply(&snapshot("flowLogs: []\n")).unwrap();
        assert!(exporters.running().is_empty());
    }
}
