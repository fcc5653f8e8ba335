//! Hubble's static exporter flags with our prefix rule (`hubble-export-*` →
//! `export-*`).

use std::path::PathBuf;

use sightline_proto::flow::FlowFilter;

use super::ExportError;
use crate::observer::fieldmask::FlowMask;
use crate::observer::filter::FilterSet;

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Where flow logs go: `stdout` or a file; empty = no export.
    #[arg(long, env = "SIGHTLINE_EXPORT_FILE_PATH", default_value = "")]
    pub export_file_path: String,

    /// Size in MB at which the file rotates.
    #[arg(long, env = "SIGHTLINE_EXPORT_FILE_MAX_SIZE_MB", default_value_t = 10)]
    pub export_file_max_size_mb: u64,

    /// Rotated files kept.
    #[arg(long, env = "SIGHTLINE_EXPORT_FILE_MAX_BACKUPS", default_value_t = 5)]
    pub export_file_max_backups: usize,

    /// Gzip rotated files.
    #[arg(long, env = "SIGHTLINE_EXPORT_FILE_COMPRESS")]
    pub export_file_compress: bool,

    /// Export only events matching one of these FlowFilters (JSON objects,
    /// whitespace-separated).
    #[arg(long, env = "SIGHTLINE_EXPORT_ALLOWLIST", default_value = "")]
    pub export_allowlist: String,

    /// Never export events matching one of these FlowFilters.
    #[arg(long, env = "SIGHTLINE_EXPORT_DENYLIST", default_value = "")]
    pub export_denylist: String,

    /// Flow fields to keep (e.g. `time,source.pod_name,verdict`); empty = all.
    #[arg(long, env = "SIGHTLINE_EXPORT_FIELDMASK", value_delimiter = ',')]
    pub export_fieldmask: Vec<String>,

    /// Hubble's dynamic exporter file (`flowLogs:` list, one exporter per entry),
    /// followed while the agent runs.
    #[arg(long, env = "SIGHTLINE_FLOWLOGS_CONFIG_PATH")]
    pub flowlogs_config_path: Option<PathBuf>,
}

/// Parses whitespace-separated JSON FlowFilters, naming the flag and the filter at fault.
pub fn parse_filters(flag: &'static str, text: &str) -> Result<Vec<FlowFilter>, ExportError> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<FlowFilter>()
        .enumerate()
        .map(|(i, filter)| {
            filter.map_err(|err| ExportError::Invalid {
                flag,
                reason: format!("filter {}: {err}", i + 1),
            })
        })
        .collect()
}

impl ExportArgs {
    pub fn enabled(&self) -> bool {
        !self.export_file_path.trim().is_empty()
    }

    pub fn filters(&self) -> Result<FilterSet, ExportError> {
        let allow = parse_filters("export-allowlist", &self.export_allowlist)?;
        let deny = parse_filters("export-denylist", &self.export_denylist)?;
        FilterSet::compile(&allow, &deny).map_err(|err| ExportError::Invalid {
            flag: "export-allowlist/--export-denylist",
            reason: err.to_string(),
        })
    }

    pub fn mask(&self) -> Result<Option<FlowMask>, ExportError> {
        let paths: Vec<String> = self
            .export_fieldmask
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        if paths.is_empty() {
            return Ok(None);
        }
        FlowMask::compile(&paths).map(Some).map_err(|err| ExportError::Invalid {
            flag: "export-fieldmask",
            reason: err.to_string(),
        })
    }

    pub fn path(&self) -> Option<PathBuf> {
        (self.export_file_path != "stdout").then(|| PathBuf::from(&self.export_file_path))
    }
}
