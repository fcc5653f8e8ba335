//! Flow-log export (Hubble's static exporter): every event that passes the
//! allow/deny lists becomes one `ExportEvent` JSON line in a file that rotates
//! by size, or on stdout. The pipeline hands events over through a bounded
//! queue and never waits for the disk; what does not fit is counted as lost.

pub(crate) mod aggregate;
pub(crate) mod args;
pub(crate) mod dynamic;
pub(crate) mod dynamic_metrics;
pub mod encode;
pub mod exporter;
pub mod flow_json;
pub mod json_text;
pub mod rotate;

pub use args::ExportArgs;
pub use dynamic::DynamicExporters;
pub use exporter::{ExportThread, Exporter, ExporterTap};

/// Why the exporter cannot start; each variant names the flag or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An `--export-*` flag holds a value that does not parse or that its companion flag contradicts.
    #[error("--{flag}: {reason}")]
    Invalid {
        /// The flag's name without its leading `--`, e.g. `export-allowlist`.
        flag: &'static str,
        /// What is wrong with the value, quoting it.
        reason: String,
    },
    /// The output file or the writer thread could not be set up.
    #[error("export file {path}: {source}")]
    File {
        /// The file being opened (`stdout` when the thread failed to start for stdout).
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}
