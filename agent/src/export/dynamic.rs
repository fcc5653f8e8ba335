//! Hubble's dynamic exporter (`--flowlogs-config-path`): a YAML file whose
//! `flowLogs:` list names one exporter per entry. Each entry runs the static
//! exporter with its own file, filters, mask and aggregation. On every new version of the text
//! the entries are compared by name: unchanged ones keep running untouched,
//! removed ones are stopped (their queue written out, their thread joined),
//! changed ones restarted, new ones started. Entries past their `end` stop. A text
//! that does not parse or check keeps the running set.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sightline_proto::Timestamp;
use sightline_proto::flow::FlowFilter;

use super::args::{AggregationField, aggregation};
use super::dynamic_metrics::{DynamicExporterMetrics, ExporterState, Reconfiguration};
use super::exporter::{ExportTarget, QUEUE_CAPACITY};
use super::rotate::Rotation;
use super::{Exporter, ExporterTap};
use crate::metrics::runtime::LostEvents;
use crate::observer::entry::Entry;
use crate::observer::fieldmask::FlowMask;
use crate::observer::filter::FilterSet;

/// Hubble's values when an entry leaves size or backups at 0.
const DEFAULT_MAX_SIZE_MB: u64 = 10;
const DEFAULT_MAX_BACKUPS: usize = 5;
/// How often the file is read (Hubble: 5 s; the issue asks for 2 s at most).
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum FlowLogsError {
    #[error("flow logs {origin}: {reason}")]
    Parse { origin: String, reason: String },
    #[error("flow logs {origin}: entry {name:?}: {field}: {reason}")]
    Entry {
        origin: String,
        name: String,
        field: &'static str,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FlowLogsFile {
    #[serde(default)]
    flow_logs: Vec<FlowLogEntry>,
}

/// One `flowLogs:` entry, with Hubble's key names.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FlowLogEntry {
    pub name: String,
    pub file_path: String,
    #[serde(default)]
    pub field_mask: Vec<String>,
    #[serde(default)]
    pub field_aggregate: Vec<String>,
    #[serde(default)]
    pub aggregation_interval: Option<String>,
    #[serde(default)]
    pub include_filters: Vec<FlowFilter>,
    #[serde(default)]
    pub exclude_filters: Vec<FlowFilter>,
    #[serde(default)]
    pub file_max_size_mb: u64,
    #[serde(default)]
    pub file_max_backups: usize,
    #[serde(default)]
    pub file_compress: bool,
    #[serde(default)]
    pub end: Option<Timestamp>,
}

impl FlowLogEntry {
    fn ended(&self, now: Timestamp) -> bool {
        self.end
            .is_some_and(|end| (end.seconds, end.nanos) <= (now.seconds, now.nanos))
    }

    /// Compiles the entry into what the static exporter runs, naming the field at fault.
    fn target(&self, origin: &str) -> Result<ExportTarget, FlowLogsError> {
        let fail = |field, reason: String| FlowLogsError::Entry {
            origin: origin.to_owned(),
            name: self.name.clone(),
            field,
            reason,
        };
        if self.file_path.trim().is_empty() {
            return Err(fail("filePath", "must not be empty".into()));
        }
        let aggregation = aggregation(
            &self.field_aggregate,
            self.aggregation_interval.as_deref().unwrap_or(""),
        )
        .map_err(|(field, reason)| match field {
            AggregationField::Fields => fail("fieldAggregate", reason),
            AggregationField::Interval => fail("aggregationInterval", reason),
        })?;
        let filters = FilterSet::compile(&self.include_filters, &self.exclude_filters)
            .map_err(|err| fail("includeFilters/excludeFilters", err.to_string()))?;
        let paths: Vec<String> = self
            .field_mask
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        let mask = if paths.is_empty() {
            None
        } else {
            Some(FlowMask::compile(&paths).map_err(|err| fail("fieldMask", err.to_string()))?)
        };
        let size_mb = match self.file_max_size_mb {
            0 => DEFAULT_MAX_SIZE_MB,
            size => size,
        };
        let backups = match self.file_max_backups {
            0 => DEFAULT_MAX_BACKUPS,
            backups => backups,
        };
        Ok(ExportTarget {
            path: (self.file_path != "stdout").then(|| PathBuf::from(&self.file_path)),
            rotation: Rotation {
                max_bytes: size_mb * 1024 * 1024,
                max_backups: backups,
                compress: self.file_compress,
            },
            filters,
            mask,
            aggregation,
        })
    }
}

/// Parses and checks a whole file: every entry must compile and names must be unique.
pub(crate) fn parse(origin: &str, text: &str) -> Result<BTreeMap<String, FlowLogEntry>, FlowLogsError> {
    let file: FlowLogsFile = if text.trim().is_empty() {
        FlowLogsFile { flow_logs: Vec::new() }
    } else {
        serde_yaml_ng::from_str(text).map_err(|err| FlowLogsError::Parse {
            origin: origin.to_owned(),
            reason: err.to_string(),
        })?
    };
    let mut entries = BTreeMap::new();
    for entry in file.flow_logs {
        if entry.name.trim().is_empty() {
            return Err(FlowLogsError::Parse {
                origin: origin.to_owned(),
                reason: format!("an entry without a name (filePath {:?})", entry.file_path),
            });
        }
        entry.target(origin)?;
        let name = entry.name.clone();
        if entries.insert(name.clone(), entry).is_some() {
            return Err(FlowLogsError::Parse {
                origin: origin.to_owned(),
                reason: format!("entry name {name:?} appears twice"),
            });
        }
    }
    Ok(entries)
}

/// What a new set of entries does to the running ones.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub start: Vec<String>,
    pub restart: Vec<String>,
    pub stop: Vec<String>,
    pub keep: Vec<String>,
}

pub(crate) fn plan(running: &BTreeMap<String, FlowLogEntry>, wanted: &BTreeMap<String, FlowLogEntry>) -> Plan {
    let mut plan = Plan::default();
    for (name, entry) in wanted {
        match running.get(name) {
            None => plan.start.push(name.clone()),
            Some(old) if old == entry => plan.keep.push(name.clone()),
            Some(_) => plan.restart.push(name.clone()),
        }
    }
    plan.stop = running
        .keys()
        .filter(|name| !wanted.contains_key(*name))
        .cloned()
        .collect();
    plan
}

struct Running {
    entry: FlowLogEntry,
    tap: ExporterTap,
}

/// The running dynamic exporters and the pipeline's tap on them.
#[derive(Clone)]
pub struct DynamicExporters {
    running: Arc<Mutex<BTreeMap<String, Running>>>,
    /// Whether `running` has any entry: every event checks this instead of taking the
    /// lock, since most agents run no dynamic exporter at all.
    any_running: Arc<AtomicBool>,
    /// The entries of the last good text, including ended ones (so they are not
    /// restarted on every reload).
    wanted: Arc<Mutex<BTreeMap<String, FlowLogEntry>>>,
    node_name: String,
    lost: Option<LostEvents>,
    metrics: DynamicExporterMetrics,
}

impl DynamicExporters {
    /// No exporter runs until a `flowLogs` file is applied; `node_name` goes into every
    /// line and `lost` counts events dropped by full queues.
    pub fn new(node_name: String, lost: Option<LostEvents>) -> Self {
        Self {
            running: Arc::default(),
            any_running: Arc::default(),
            wanted: Arc::default(),
            node_name,
            lost,
            metrics: DynamicExporterMetrics::default(),
        }
    }

    /// Records into `metrics` (registered on the agent's registry) from now on.
    pub fn with_metrics(mut self, metrics: DynamicExporterMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Hands an event to every running exporter; each filters and queues without waiting.
    pub fn offer(&self, entry: &Arc<Entry>) {
        if !self.any_running.load(Ordering::Acquire) {
            return;
        }
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        for exporter in running.values_mut() {
            exporter.tap.offer(entry);
        }
    }

    /// Names of the exporters running now.
    pub fn running(&self) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running.keys().cloned().collect()
    }

    /// Applies a new text. A text that does not check changes nothing.
    pub fn apply(&self, origin: &str, text: &str) -> Result<Plan, FlowLogsError> {
        let wanted = parse(origin, text).inspect_err(|_| self.metrics.count(Reconfiguration::Failure, 1))?;
        let plan = {
            let previous = self.wanted.lock().unwrap_or_else(PoisonError::into_inner);
            plan(&previous, &wanted)
        };
        *self.wanted.lock().unwrap_or_else(PoisonError::into_inner) = wanted;
        self.metrics.count(Reconfiguration::Add, plan.start.len());
        self.metrics.count(Reconfiguration::Update, plan.restart.len());
        self.metrics.count(Reconfiguration::Remove, plan.stop.len());
        let now = Timestamp::now();
        self.metrics.applied(text, now);
        self.reconcile(origin, now);
        Ok(plan)
    }

    /// Brings the running set to the wanted one as of `now`: ends expired entries,
    /// restarts changed ones, starts missing ones.
    pub fn reconcile(&self, origin: &str, now: Timestamp) {
        let wanted = self.wanted.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut stopping = Vec::new();
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        let names: Vec<String> = running.keys().cloned().collect();
        for name in names {
            let keep = wanted
                .get(&name)
                .is_some_and(|entry| !entry.ended(now) && running.get(&name).is_some_and(|r| &r.entry == entry));
            if !keep && let Some(old) = running.remove(&name) {
                stopping.push((name, old));
            }
        }
        for (name, entry) in &wanted {
            if running.contains_key(name) || entry.ended(now) {
                continue;
            }
            let started = entry.target(origin).and_then(|target| {
                Exporter::start_target(target, self.node_name.clone(), self.lost.clone(), QUEUE_CAPACITY).map_err(
                    |err| FlowLogsError::Entry {
                        origin: origin.to_owned(),
                        name: name.clone(),
                        field: "filePath",
                        reason: err.to_string(),
                    },
                )
            });
            match started {
                Ok(tap) => {
                    tracing::info!(name, file = entry.file_path, "flow log exporter started");
                    running.insert(
                        name.clone(),
                        Running {
                            entry: entry.clone(),
                            tap,
                        },
                    );
                }
                Err(error) => tracing::warn!(%error, "flow log exporter not started"),
            }
        }
        self.any_running.store(!running.is_empty(), Ordering::Release);
        self.metrics.set_exporters(
            wanted
                .iter()
                .map(|(name, entry)| ExporterState {
                    name: name.clone(),
                    end: entry.end,
                    running: running.contains_key(name),
                })
                .collect(),
        );
        // The pipeline no longer reaches the stopped ones; their writers drain outside the lock.
        drop(running);
        for (name, old) in stopping {
            old.tap.stop();
            tracing::info!(name, "flow log exporter stopped");
        }
    }

    /// Stops every exporter, writing out what they queued.
    pub fn stop_all(&self) {
        self.wanted.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let stopping = std::mem::take(&mut *self.running.lock().unwrap_or_else(PoisonError::into_inner));
        self.any_running.store(false, Ordering::Release);
        for (_, old) in stopping {
            old.tap.stop();
        }
    }

    /// Follows `path`: reads it every `POLL_INTERVAL` (1 s), applies it when its content
    /// changed, and ends entries whose `end` has passed. The first read is applied
    /// before this returns, so a broken file at start is an error.
    pub fn follow_file(&self, path: PathBuf) -> Result<FileFollower, FlowLogsError> {
        let origin = path.display().to_string();
        let first = read(&path)?;
        self.apply(&origin, &first)?;
        let stop = tokio_util::sync::CancellationToken::new();
        let this = self.clone();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("flowlogs-config".into())
            .spawn(move || this.poll(&path, first, &stopped))
            .map_err(|err| FlowLogsError::Parse {
                origin,
                reason: err.to_string(),
            })?;
        Ok(FileFollower {
            stop,
            thread: Some(thread),
        })
    }

    fn poll(&self, path: &Path, mut seen: String, stop: &tokio_util::sync::CancellationToken) {
        let origin = path.display().to_string();
        let mut failing = false;
        // The first text was applied by `follow_file`.
        let mut seen_good = true;
        while !stop.is_cancelled() {
            std::thread::sleep(POLL_INTERVAL);
            match read(path) {
                Ok(text) if text == seen => {
                    failing = false;
                    // Hubble re-applies an unchanged good file on every read, refreshing
                    // `config_last_applied`; a refused one counts once, when it appears.
                    if seen_good {
                        self.metrics.applied(&text, Timestamp::now());
                    }
                }
                Ok(text) => {
                    failing = false;
                    match self.apply(&origin, &text) {
                        Ok(plan) => {
                            seen_good = true;
                            tracing::info!(?plan, "flow logs configuration applied");
                        }
                        Err(error) => {
                            seen_good = false;
                            tracing::warn!(%error, "flow logs configuration refused; the last good one stays in force");
                        }
                    }
                    seen = text;
                }
                Err(error) if !failing => {
                    failing = true;
                    self.metrics.count(Reconfiguration::Failure, 1);
                    tracing::warn!(%error, "cannot read the flow logs configuration; the last good one stays in force");
                }
                Err(_) => {}
            }
            self.reconcile(&origin, Timestamp::now());
        }
    }
}

fn read(path: &Path) -> Result<String, FlowLogsError> {
    std::fs::read_to_string(path).map_err(|err| FlowLogsError::Parse {
        origin: path.display().to_string(),
        reason: err.to_string(),
    })
}

/// The thread following the file; dropping it stops the thread.
pub struct FileFollower {
    stop: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FileFollower {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Instant;

    use super::*;
    use crate::event::Event;
    use crate::synthetic;

    fn config(entries: &str) -> String {
        format!("flowLogs:\n{entries}")
    }

    fn entry(name: &str, path: &Path, verdict: &str) -> String {
        format!(
            "  - name: {name}\n    filePath: {}\n    fieldMask: [time, uuid, verdict]\n    includeFilters:\n      - verdict: [{verdict}]\n",
            path.display()
        )
    }

    #[test]
    fn hubble_keys_parse_and_zero_sizes_take_hubbles_defaults() {
        let text = "flowLogs:\n  - name: all\n    filePath: /var/log/flows.log\n    fieldMask: [source.namespace, verdict]\n    includeFilters:\n      - source_pod: [kube-system/]\n    excludeFilters:\n      - verdict: [DROPPED]\n    fileMaxSizeMb: 0\n    fileMaxBackups: 0\n    fileCompress: true\n    end: \"2030-01-02T03:04:05Z\"\n";
        let entries = parse("flowlogs.yaml", text).unwrap();
        let all = &entries["all"];
        assert_eq!(all.file_path, "/var/log/flows.log");
        assert_eq!(all.include_filters[0].source_pod, ["kube-system/"]);
        assert_eq!(all.exclude_filters.len(), 1);
        assert_eq!(all.end.unwrap().seconds, 1_893_553_445);
        let target = all.target("flowlogs.yaml").unwrap();
        assert_eq!(target.rotation.max_bytes, 10 * 1024 * 1024);
        assert_eq!(target.rotation.max_backups, 5);
        assert!(target.rotation.compress);
        assert!(parse("empty", "").unwrap().is_empty());
        assert!(parse("empty", "flowLogs: []\n").unwrap().is_empty());
    }

    #[test]
    fn bad_entries_are_refused_naming_entry_field_and_value() {
        let cases = [
            (
                "flowLogs:\n  - name: a\n    filePath: /x\n    fieldMask: [source.no_such_field]\n",
                &["\"a\"", "fieldMask", "no_such_field"][..],
            ),
            (
                "flowLogs:\n  - name: a\n    filePath: /x\n    includeFilters:\n      - no_such_filter: [x]\n",
                &["flowlogs.yaml", "no_such_filter"][..],
            ),
            (
                "flowLogs:\n  - name: a\n    filePath: \"\"\n",
                &["\"a\"", "filePath"][..],
            ),
            (
                "flowLogs:\n  - name: a\n    filePath: /x\n  - name: a\n    filePath: /y\n",
                &["\"a\"", "twice"][..],
            ),
            (
                "flowLogs:\n  - name: a\n    filePath: /x\n    filepath: /y\n",
                &["filepath"][..],
            ),
            (
                "flowLogs:\n  - name: a\n    filePath: /x\n    end: tomorrow\n",
                &["tomorrow"][..],
            ),
            (
                "flowLogs:\n  - name: a\n    filePath: /x\n    fieldAggregate: [verdict]\n",
                &["\"a\"", "aggregationInterval", "above 0"][..],
            ),
            (
                "flowLogs:\n  - name: a\n    filePath: /x\n    fieldAggregate: [verdict, source.no_such]\n    aggregationInterval: 10s\n",
                &["\"a\"", "fieldAggregate", "source.no_such"][..],
            ),
            (
                "flowLogs:\n  - name: a\n    filePath: /x\n    fieldAggregate: [verdict]\n    aggregationInterval: soon\n",
                &["\"a\"", "aggregationInterval", "soon"][..],
            ),
        ];
        for (text, expected) in cases {
            let error = parse("flowlogs.yaml", text).unwrap_err().to_string();
            for part in expected {
                assert!(error.contains(part), "{error:?} should name {part}");
            }
        }
    }

    #[test]
    fn the_plan_keeps_unchanged_restarts_changed_stops_removed() {
        let dir = Path::new("/tmp");
        let old = parse(
            "f",
            &config(
                &[
                    entry("a", &dir.join("a"), "DROPPED"),
                    entry("b", &dir.join("b"), "DROPPED"),
                    entry("c", &dir.join("c"), "DROPPED"),
                ]
                .concat(),
            ),
        )
        .unwrap();
        let new = parse(
            "f",
            &config(
                &[
                    entry("a", &dir.join("a"), "DROPPED"),
                    entry("b", &dir.join("b"), "FORWARDED"),
                    entry("d", &dir.join("d"), "DROPPED"),
                ]
                .concat(),
            ),
        )
        .unwrap();
        assert_eq!(
            plan(&old, &new),
            Plan {
                start: vec!["d".into()],
                restart: vec!["b".into()],
                stop: vec!["c".into()],
                keep: vec!["a".into()],
            }
        );
    }

    fn verdicts(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["flow"]["verdict"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }

    /// Offers flows until `path` holds `count` lines or 10 s pass.
    fn feed_until(exporters: &DynamicExporters, path: &Path, first: u64, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut i = first;
        loop {
            for _ in 0..10 {
                let record = synthetic::record(i, "node-1", Timestamp::now());
                exporters.offer(&Arc::new(Entry::new(Event::Flow(Box::new(record)))));
                i += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
            let seen = verdicts(path);
            if seen.len() >= count || Instant::now() > deadline {
                return seen;
            }
        }
    }

    #[test]
    fn the_file_is_followed_filters_change_live_and_a_broken_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("flowlogs.yaml");
        let dropped = dir.path().join("dropped.log");
        let other = dir.path().join("other.log");
        std::fs::write(&config_path, config(&entry("flows", &dropped, "DROPPED"))).unwrap();
        let exporters = DynamicExporters::new("node-1".into(), None);
        let follower = exporters.follow_file(config_path.clone()).unwrap();
        assert_eq!(exporters.running(), ["flows"]);

        let seen = feed_until(&exporters, &dropped, 0, 5);
        assert!(seen.len() >= 5, "{seen:?}");
        assert!(seen.iter().all(|v| v == "DROPPED"), "{seen:?}");

        // The filter changes: the entry restarts (its queue written out) with the new one.
        std::fs::write(&config_path, config(&entry("flows", &dropped, "FORWARDED"))).unwrap();
        let written = Instant::now();
        let mut i = 1000;
        while !verdicts(&dropped).iter().any(|v| v == "FORWARDED") && written.elapsed() < Duration::from_secs(10) {
            feed_until(&exporters, &dropped, i, 0);
            i += 10;
        }
        // One poll interval plus the restart; the slack is for a loaded machine.
        assert!(
            written.elapsed() < Duration::from_secs(4),
            "applied after {:?}",
            written.elapsed()
        );
        let before = verdicts(&dropped).len();
        let seen = feed_until(&exporters, &dropped, i, before + 20);
        let forwarded_at = seen
            .iter()
            .position(|v| v == "FORWARDED")
            .expect("the new filter applies");
        assert!(seen[..forwarded_at].iter().all(|v| v == "DROPPED"), "{seen:?}");
        assert!(seen[forwarded_at..].iter().all(|v| v == "FORWARDED"), "{seen:?}");

        // A broken file keeps the running exporter.
        std::fs::write(
            &config_path,
            "flowLogs:\n  - name: flows\n    filePath: [not, a, path\n",
        )
        .unwrap();
        std::thread::sleep(POLL_INTERVAL * 2);
        assert_eq!(exporters.running(), ["flows"]);
        let before = verdicts(&dropped).len();
        let seen = feed_until(&exporters, &dropped, 5000, before + 10);
        assert!(
            seen.len() >= before + 10,
            "exporting goes on: {} then {}",
            before,
            seen.len()
        );

        // Another entry added, the first removed; an entry already past its end never starts.
        let ended = "  - name: over\n    filePath: /nonexistent/over.log\n    end: \"2001-01-01T00:00:00Z\"\n";
        std::fs::write(
            &config_path,
            config(&[entry("second", &other, "FORWARDED"), ended.to_owned()].concat()),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while exporters.running() != ["second"] && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(exporters.running(), ["second"]);
        let stopped_lines = verdicts(&dropped).len();
        let seen = feed_until(&exporters, &other, 9000, 5);
        assert!(seen.len() >= 5);
        assert_eq!(
            verdicts(&dropped).len(),
            stopped_lines,
            "a stopped exporter writes nothing more"
        );
        drop(follower);
        exporters.stop_all();
        assert!(exporters.running().is_empty());
    }

    #[test]
    fn an_entry_stops_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let end = Timestamp::now().seconds + 3600;
        let end_text = sightline_proto::Timestamp { seconds: end, nanos: 0 };
        let text = format!(
            "flowLogs:\n  - name: a\n    filePath: {}\n    end: {}\n",
            path.display(),
            serde_json::to_string(&end_text).unwrap()
        );
        let exporters = DynamicExporters::new("node-1".into(), None);
        exporters.apply("flowlogs.yaml", &text).unwrap();
        assert_eq!(exporters.running(), ["a"]);
        exporters.reconcile(
            "flowlogs.yaml",
            Timestamp {
                seconds: end - 1,
                nanos: 0,
            },
        );
        assert_eq!(exporters.running(), ["a"]);
        exporters.reconcile("flowlogs.yaml", Timestamp { seconds: end, nanos: 0 });
        assert!(exporters.running().is_empty());
    }
}

#[cfg(test)]
#[path = "dynamic_aggregation_tests.rs"]
mod aggregation_tests;

#[cfg(test)]
#[path = "dynamic_metrics_tests.rs"]
mod metrics_tests;
