//! The agent follows its configuration while it runs. Two sources deliver
//! [`Snapshot`]s to one [`apply::Applier`]: the `--config` file, polled by content
//! (a mounted ConfigMap changes through a symlink swap, which file-change
//! notifications on the file itself miss), and, in a cluster, the operator's
//! ConfigMap watched through the API (seconds instead of the kubelet's volume
//! sync). Live keys reach the datapath and the metrics pipeline without a restart;
//! restart-only keys are logged and wait; a broken configuration keeps the last
//! good one. The generation in force is reported on a per-node Lease.

pub(crate) mod apply;
pub(crate) mod args;
pub(crate) mod configmap;
pub(crate) mod diff;
pub(crate) mod file_source;
pub(crate) mod lease;
pub(crate) mod profile;
pub mod runtime;

use std::path::PathBuf;

pub use apply::Applier;
pub use args::LiveArgs;

/// One configuration as a source delivers it. `None` parts are not this source's
/// to give and leave what runs alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Where the texts come from, for messages (a file path, or `configmap ns/name`).
    pub origin: PathBuf,
    /// The `--config` file's text: keys are the long flag names.
    pub config: Option<String>,
    /// Hubble's dynamic metrics YAML (`metrics: [...]`).
    pub metrics: Option<String>,
    /// Hubble's dynamic exporter YAML (`flowLogs: [...]`).
    pub flowlogs: Option<String>,
    /// The operator's `generation` key the texts were rendered from.
    pub generation: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveConfigError {
    #[error(transparent)]
    File(#[from] sightline_common::config_file::ConfigFileError),
    #[error("{origin}: {source}")]
    Flags { origin: PathBuf, source: Box<clap::Error> },
    #[error(transparent)]
    Metrics(#[from] crate::metrics::dynamic::DynamicConfigError),
    #[error(transparent)]
    FlowLogs(#[from] crate::export::dynamic::FlowLogsError),
    /// A bad `generation` in the file or the ConfigMap.
    #[error(transparent)]
    Source(#[from] sightline_common::live_source::LiveSourceError),
    #[error("{origin}: node-profiles.yaml: {reason}")]
    Profiles { origin: PathBuf, reason: String },
}
