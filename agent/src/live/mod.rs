//! The agent follows its configuration while it runs. Two sources deliver
//! [`Snapshot`]s to one `apply::Applier`: the `--config` file, polled by content
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

pub(crate) use apply::Applier;
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

/// Why a configuration was refused. At start-up the agent exits with it; while
/// running, the last good configuration stays in force and this is logged.
#[derive(Debug, thiserror::Error)]
pub enum LiveConfigError {
    /// The `--config` file could not be read, or is not YAML/TOML of flag names.
    #[error(transparent)]
    File(#[from] sightline_common::config_file::ConfigFileError),
    /// The configuration's keys, merged with the command line, are not valid flags.
    #[error("{origin}: {source}")]
    Flags {
        /// Where the configuration came from (file path or `configmap ns/name`).
        origin: PathBuf,
        /// clap's message naming the flag and value.
        source: Box<clap::Error>,
    },
    /// The dynamic metrics YAML is invalid.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::dynamic::DynamicConfigError),
    /// The dynamic exporter YAML (`flowLogs`) is invalid.
    #[error(transparent)]
    FlowLogs(#[from] crate::export::dynamic::FlowLogsError),
    /// A bad `generation` in the file or the ConfigMap.
    #[error(transparent)]
    Source(#[from] sightline_common::live_source::LiveSourceError),
    /// `node-profiles.yaml` is not a map of node names to profile names.
    #[error("{origin}: node-profiles.yaml: {reason}")]
    Profiles {
        /// The file or ConfigMap holding `node-profiles.yaml`.
        origin: PathBuf,
        /// The YAML parser's message.
        reason: String,
    },
}
