//! Hubble's static exporter flags with our prefix rule (`hubble-export-*` →
//! `export-*`).

use std::path::PathBuf;

use sightline_proto::flow::FlowFilter;

use super::ExportError;
use super::aggregate::{AggregationSpec, DEFAULT_MAX_GROUPS};
use crate::observer::fieldmask::FlowMask;
use crate::observer::filter::FilterSet;

/// The flow-log exporter's flags (Hubble's `hubble-export-*` set), flattened into the
/// agent's command line; [`Exporter`](super::Exporter) is built from them.
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

    /// Flow fields to aggregate on (e.g. `verdict,destination.namespace`): flows
    /// with the same values are written as one aggregated flow per interval.
    #[arg(long, env = "SIGHTLINE_EXPORT_FIELDAGGREGATE", value_delimiter = ',')]
    pub export_fieldaggregate: Vec<String>,

    /// How often aggregated flows are written; 0 = no aggregation (Hubble's default).
    #[arg(long, env = "SIGHTLINE_EXPORT_AGGREGATION_INTERVAL", default_value = "0s")]
    pub export_aggregation_interval: String,

    /// Hubble's dynamic exporter file (`flowLogs:` list, one exporter per entry),
    /// followed while the agent runs.
    #[arg(long, env = "SIGHTLINE_FLOWLOGS_CONFIG_PATH")]
    pub flowlogs_config_path: Option<PathBuf>,
}

/// Parses whitespace-separated JSON FlowFilters, naming the flag and the filter at fault.
pub(crate) fn parse_filters(flag: &'static str, text: &str) -> Result<Vec<FlowFilter>, ExportError> {
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
    /// Whether a destination is set at all; without one no exporter thread is started.
    pub(crate) fn enabled(&self) -> bool {
        !self.export_file_path.trim().is_empty()
    }

    /// The allow and deny lists compiled once; an error names the flag and the filter.
    pub(crate) fn filters(&self) -> Result<FilterSet, ExportError> {
        let allow = parse_filters("export-allowlist", &self.export_allowlist)?;
        let deny = parse_filters("export-denylist", &self.export_denylist)?;
        FilterSet::compile(&allow, &deny).map_err(|err| ExportError::Invalid {
            flag: "export-allowlist/--export-denylist",
            reason: err.to_string(),
        })
    }

    /// The `--export-fieldmask` paths compiled, or `None` to export whole events.
    pub(crate) fn mask(&self) -> Result<Option<FlowMask>, ExportError> {
        let paths = field_paths(&self.export_fieldmask);
        if paths.is_empty() {
            return Ok(None);
        }
        FlowMask::compile(&paths).map(Some).map_err(|err| ExportError::Invalid {
            flag: "export-fieldmask",
            reason: err.to_string(),
        })
    }

    /// The aggregation settings, or `None` when flows are exported one by one.
    pub(crate) fn aggregation(&self) -> Result<Option<AggregationSpec>, ExportError> {
        aggregation(&self.export_fieldaggregate, &self.export_aggregation_interval).map_err(|(field, reason)| {
            ExportError::Invalid {
                flag: match field {
                    AggregationField::Fields => "export-fieldaggregate",
                    AggregationField::Interval => "export-aggregation-interval",
                },
                reason,
            }
        })
    }

    /// The file to write, or `None` for `stdout`.
    pub(crate) fn path(&self) -> Option<PathBuf> {
        (self.export_file_path != "stdout").then(|| PathBuf::from(&self.export_file_path))
    }
}

/// Which of the two aggregation settings is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggregationField {
    Fields,
    Interval,
}

/// Checks the aggregation settings, shared by the flags and the dynamic file.
/// Aggregation is on when fields are listed and the interval is above zero, as in
/// Hubble; fields with a zero interval would silently export nothing aggregated
/// and are refused.
pub(crate) fn aggregation(
    fields: &[String],
    interval: &str,
) -> Result<Option<AggregationSpec>, (AggregationField, String)> {
    let paths = field_paths(fields);
    let interval = if interval.trim().is_empty() {
        std::time::Duration::ZERO
    } else {
        sightline_common::duration::parse_duration(interval)
            .map_err(|err| (AggregationField::Interval, err.to_string()))?
    };
    if paths.is_empty() {
        return Ok(None);
    }
    let fields = FlowMask::compile(&paths).map_err(|err| (AggregationField::Fields, err.to_string()))?;
    if interval.is_zero() {
        return Err((
            AggregationField::Interval,
            "must be above 0 when fields to aggregate on are listed".into(),
        ));
    }
    Ok(Some(AggregationSpec {
        fields,
        interval,
        max_groups: DEFAULT_MAX_GROUPS,
    }))
}

/// Field paths from flag values split at commas (by clap) or whitespace (Cilium's
/// Helm chart joins the list with spaces).
pub(crate) fn field_paths(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|value| value.split_whitespace())
        .map(str::to_owned)
        .collect()
}
