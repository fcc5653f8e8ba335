//! Standalone mode: the index fed from Kubernetes YAML files in a directory.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file is read (multi-document YAML and `kind:
//! List` are fine) and re-read when its size or modification time changes. A file
//! that fails to parse is reported and keeps the objects of its last good version;
//! the other files are unaffected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::convert::Watched;
use crate::enrich::Index;
use crate::enrich::model::{ALL_KINDS, Change, Object};

/// A problem with the manifests directory or one of its files. Only [`ManifestError::Dir`]
/// stops a reload; a file's problem keeps that file's last good objects.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The directory itself could not be listed.
    #[error("cannot read manifests directory {path}: {source}")]
    Dir {
        /// The `--manifests` directory.
        path: PathBuf,
        /// The I/O error from listing it.
        source: std::io::Error,
    },
    /// A file in it could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error from reading it.
        source: std::io::Error,
    },
    /// A document is not YAML/JSON, or an object of a known kind does not decode.
    #[error("{path}: document {document}: {message}")]
    Parse {
        /// The file holding the document.
        path: PathBuf,
        /// 1-based, counting `---`-separated documents.
        document: usize,
        /// The decoder's message, prefixed with the object's kind.
        message: String,
    },
}

#[derive(Debug)]
struct LoadedFile {
    stamp: (SystemTime, u64),
    objects: Vec<Object>,
}

/// The `--manifests` directory and the objects last read from each of its files.
#[derive(Debug)]
pub struct ManifestDir {
    dir: PathBuf,
    files: BTreeMap<PathBuf, LoadedFile>,
}

fn decode<K: Watched + serde::de::DeserializeOwned>(value: Value) -> Result<Option<Object>, String> {
    let object: K = serde_yaml_ng::from_value(value).map_err(|e| e.to_string())?;
    Ok(object.convert())
}

/// Objects of the kinds the index uses; other kinds (ConfigMaps, …) are skipped.
fn objects_of(value: Value, out: &mut Vec<Object>) -> Result<(), String> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let object = match kind.as_str() {
        "List" => {
            let items = value
                .get("items")
                .and_then(Value::as_sequence)
                .cloned()
                .unwrap_or_default();
            for item in items {
                objects_of(item, out)?;
            }
            return Ok(());
        }
        "Pod" => decode::<Pod>(value),
        "Service" => decode::<Service>(value),
        "EndpointSlice" => decode::<EndpointSlice>(value),
        "Namespace" => decode::<Namespace>(value),
        "Node" => decode::<Node>(value),
        "ReplicaSet" => decode::<ReplicaSet>(value),
        "Job" => decode::<Job>(value),
        "Deployment" => decode::<Deployment>(value),
        "StatefulSet" => decode::<StatefulSet>(value),
        "DaemonSet" => decode::<DaemonSet>(value),
        "CronJob" => decode::<CronJob>(value),
        "NetworkPolicy" => decode::<NetworkPolicy>(value),
        "" => Err("no `kind` field".to_owned()),
        _ => Ok(None),
    }
    .map_err(|e| if kind.is_empty() { e } else { format!("{kind}: {e}") })?;
    match object {
        Some(object) => out.push(object),
        None => return Err(format!("{kind} without metadata.name")),
    }
    Ok(())
}

/// Parses one file; any bad document fails the whole file so a half-read file never
/// replaces a good one.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Object>, ManifestError> {
    let mut objects = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let error = |message: String| ManifestError::Parse {
            path: path.to_owned(),
            document: i + 1,
            message,
        };
        let value = Value::deserialize(document).map_err(|e| error(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        objects_of(value, &mut objects).map_err(error)?;
    }
    Ok(objects)
}

impl ManifestDir {
    /// A directory not read yet: the first [`ManifestDir::reload`] reads every file.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ManifestDir {
            dir: dir.into(),
            files: BTreeMap::new(),
        }
    }

    /// Re-reads what changed. Returns whether the object set may have changed, and
    /// the problems found (each names its file).
    pub fn reload(&mut self) -> Result<(bool, Vec<ManifestError>), ManifestError> {
        let dir_error = |source| ManifestError::Dir {
            path: self.dir.clone(),
            source,
        };
        let mut seen = Vec::new();
        let mut changed = false;
        let mut errors = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(dir_error)? {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            let wanted = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            let Ok(meta) = entry.metadata() else { continue };
            if !wanted || !meta.is_file() {
                continue;
            }
            seen.push(path.clone());
            let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
            if self.files.get(&path).is_some_and(|f| f.stamp == stamp) {
                continue;
            }
            let parsed = std::fs::read_to_string(&path)
                .map_err(|source| ManifestError::Read {
                    path: path.clone(),
                    source,
                })
                .and_then(|text| parse(&path, &text));
            match parsed {
                Ok(objects) => {
                    self.files.insert(path, LoadedFile { stamp, objects });
                    changed = true;
                }
                Err(error) => {
                    // Keep the last good objects; remember the stamp so the same
                    // broken content is reported once, not every poll.
                    let objects = self.files.remove(&path).map(|f| f.objects).unwrap_or_default();
                    self.files.insert(path, LoadedFile { stamp, objects });
                    errors.push(error);
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|path, _| seen.contains(path));
        changed |= self.files.len() != before;
        Ok((changed, errors))
    }

    /// One complete list per kind, as a relist would give.
    pub fn changes(&self) -> Vec<Change> {
        ALL_KINDS
            .iter()
            .map(|kind| {
                let objects = self
                    .files
                    .values()
                    .flat_map(|f| &f.objects)
                    .filter(|o| o.kind() == *kind)
                    .cloned()
                    .collect();
                Change::Replace(*kind, objects)
            })
            .collect()
    }

    /// Loads, applies, and reports; the result says whether anything was applied.
    pub fn sync(&mut self, index: &Index) -> Result<bool, ManifestError> {
        let (changed, errors) = self.reload()?;
        for error in errors {
            tracing::error!(%error, "manifest skipped; its previous version (if any) stays in effect");
        }
        if changed {
            for change in self.changes() {
                index.apply(change);
            }
        }
        Ok(changed)
    }
}

/// Polls the directory every `interval` for the lifetime of the task.
pub async fn poll(mut dir: ManifestDir, index: Arc<Index>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = dir.sync(&index) {
            tracing::error!(%error, "manifests not reloaded");
        }
    }
}
