//! The agent's metrics flags (Hubble's `hubble-metrics*` with our prefix rule).

use std::path::PathBuf;

use super::MetricsError;
use super::engine::FlowMetrics;
use super::options;

/// The metrics server and flow-metrics flags, flattened into the agent's command line.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// Address of the Prometheus `/metrics` server (`:9965`); empty = off.
    #[arg(long, env = "SIGHTLINE_METRICS_SERVER", default_value = "")]
    pub metrics_server: String,

    /// Flow metrics in Hubble's syntax, whitespace-separated:
    /// `name[:option=value;...]`, e.g. `flow drop:sourceContext=pod;destinationContext=pod`.
    #[arg(long, env = "SIGHTLINE_METRICS", num_args = 1..)]
    pub metrics: Vec<String>,

    /// Hubble's dynamic metrics YAML (`metrics: [{name, contextOptions, includeFilters,
    /// excludeFilters}]`), applied within 2 s of a change. Excludes --metrics.
    #[arg(long, env = "SIGHTLINE_DYNAMIC_METRICS_CONFIG_PATH")]
    pub dynamic_metrics_config_path: Option<PathBuf>,

    /// Series per metric beyond which new label sets are refused (and counted in
    /// `sightline_metrics_series_limited_total`).
    #[arg(long, env = "SIGHTLINE_METRICS_MAX_SERIES", default_value_t = 10_000)]
    pub metrics_max_series: usize,

    /// Serve OpenMetrics to scrapers that ask for it (Accept header).
    #[arg(long, env = "SIGHTLINE_ENABLE_OPEN_METRICS")]
    pub enable_open_metrics: bool,

    /// Certificate chain (PEM) of the metrics server; with the key, the server speaks TLS 1.3.
    #[arg(long, env = "SIGHTLINE_METRICS_SERVER_TLS_CERT_FILE")]
    pub metrics_server_tls_cert_file: Option<PathBuf>,

    /// Private key (PEM) of the metrics server.
    #[arg(long, env = "SIGHTLINE_METRICS_SERVER_TLS_KEY_FILE")]
    pub metrics_server_tls_key_file: Option<PathBuf>,

    /// CAs whose client certificates the metrics server requires (mutual TLS).
    #[arg(long, env = "SIGHTLINE_METRICS_SERVER_TLS_CLIENT_CA_FILES", value_delimiter = ',')]
    pub metrics_server_tls_client_ca_files: Vec<PathBuf>,
}

impl MetricsArgs {
    /// The handlers `--metrics` configures, checked: a mistake stops the agent.
    pub fn static_metrics(&self) -> Result<FlowMetrics, MetricsError> {
        let specs = options::parse_list(&self.metrics)?;
        if !specs.is_empty() && self.dynamic_metrics_config_path.is_some() {
            return Err(MetricsError::StaticAndDynamic);
        }
        FlowMetrics::new(&specs, self.metrics_max_series)
    }
}
