//! The relay follows its configuration while it runs. Two sources deliver
//! [`Snapshot`]s to one [`apply::Applier`]: the `--config` file, read every second
//! and compared by content (the kubelet swaps a symlink above a mounted file, which
//! a watch on the file would miss), and, with `--config-map`, the operator's relay
//! ConfigMap watched through the API (seconds instead of the kubelet's volume sync
//! of about a minute). The sort buffer and the timeouts apply to streams and dials
//! that start after the change; open streams keep the settings they started with.
//! Other keys need a restart and are logged; a broken version keeps the last good
//! one. Every version checked is counted in `sightline_relay_config_reloads_total`.

pub mod apply;
pub mod args;
pub mod configmap;
pub mod file_source;
pub mod runtime;
pub mod settings;

use std::path::PathBuf;

pub use apply::{Applier, Targets};
pub use args::LiveArgs;
pub use settings::{LIVE_KEYS, Tunables};

use sightline_common::live_source::{ConfigText, LiveSourceError};

use crate::config::ConfigError;

/// Which source delivered a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `--config` file (a mounted ConfigMap lags the API by the kubelet's sync).
    File,
    /// `--config-map`, read through the API: the newest word.
    ConfigMap,
}

/// One version of the configuration as a source delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Which source delivered it.
    pub source: Source,
    /// Where the text comes from, for messages (a file path, or
    /// `configmap ns/name/config.yaml`); its extension picks YAML or TOML.
    pub origin: PathBuf,
    /// The `--config` file's text: keys are the long flag names.
    pub config: String,
    /// The operator's `generation` the text was rendered from, when it says.
    pub generation: Option<i64>,
}

impl Snapshot {
    /// A shared source's text, marked with the source that delivered it.
    pub fn from_text(source: Source, text: ConfigText) -> Self {
        Self {
            source,
            origin: text.origin,
            config: text.config,
            generation: text.generation,
        }
    }
}

#[derive(Debug, thiserror::Error)]
/// Why a live configuration source could not start or a version was refused.
pub enum LiveError {
    #[error(transparent)]
    /// The new version's flags are invalid.
    Config(#[from] ConfigError),
    /// A bad `generation`, a missing key, an unreadable file.
    #[error(transparent)]
    Source(#[from] LiveSourceError),
    #[error("connecting to the Kubernetes API for --config-map: {0}")]
    /// The Kubernetes client could not be built.
    Client(String),
}
