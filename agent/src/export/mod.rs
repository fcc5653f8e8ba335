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

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("--{flag}: {reason}")]
    Invalid { flag: &'static str, reason: String },
    #[error("export file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
