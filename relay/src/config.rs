//! The relay's flags. Names mirror hubble-relay's so existing configuration carries
//! over; each flag can also come from `SIGHTLINE_RELAY_<FLAG>` or the `--config` file.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::config_file::{self, ConfigFileError};
use sightline_common::duration::parse_duration;
use sightline_common::logging::LogArgs;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "sightline-relay",
    version,
    about = "One cluster-wide Hubble API in front of every Sightline agent"
)]
#[command(args_override_self = true)]
/// The relay's command line, environment and `--config` values, after validation.
pub struct Args {
    /// YAML (.yaml/.yml) or TOML (.toml) file with flag values (keys are the long flag names).
    #[arg(long, env = "SIGHTLINE_RELAY_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address of the relay's Hubble API.
    #[arg(long, env = "SIGHTLINE_RELAY_LISTEN_ADDRESS", default_value = ":4245")]
    pub listen_address: String,

    /// Address of a plaintext gRPC health endpoint for probes; empty to disable.
    #[arg(long, env = "SIGHTLINE_RELAY_HEALTH_LISTEN_ADDRESS", default_value = ":4222")]
    pub health_listen_address: String,

    /// Address of the Prometheus endpoint (`/metrics`); empty to disable.
    #[arg(long, env = "SIGHTLINE_RELAY_METRICS_LISTEN_ADDRESS", default_value = ":9966")]
    pub metrics_listen_address: String,

    /// Certificate chain (PEM) of the metrics server; with the key, it speaks TLS 1.3
    /// and reloads both when they change, as the agent's does.
    #[arg(long, env = "SIGHTLINE_RELAY_METRICS_SERVER_TLS_CERT_FILE")]
    pub metrics_server_tls_cert_file: Option<PathBuf>,

    /// Private key (PEM) of the metrics server.
    #[arg(long, env = "SIGHTLINE_RELAY_METRICS_SERVER_TLS_KEY_FILE")]
    pub metrics_server_tls_key_file: Option<PathBuf>,

    /// CAs whose client certificates the metrics server requires (mutual TLS).
    #[arg(
        long,
        env = "SIGHTLINE_RELAY_METRICS_SERVER_TLS_CLIENT_CA_FILES",
        value_delimiter = ','
    )]
    pub metrics_server_tls_client_ca_files: Vec<PathBuf>,

    /// Where to call `peer.Peer/Notify`: `unix:///path` or `host:port` (in a cluster, the agents' peer Service).
    #[arg(
        long,
        env = "SIGHTLINE_RELAY_PEER_SERVICE",
        default_value = "unix:///var/run/sightline/hubble.sock"
    )]
    pub peer_service: String,

    /// Static peers instead of the peer service: `name=address,...`.
    #[arg(long, env = "SIGHTLINE_RELAY_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Cluster name, used for the peer service's TLS server name.
    #[arg(long, env = "SIGHTLINE_RELAY_CLUSTER_NAME", default_value = "default")]
    pub cluster_name: String,

    /// Name the relay gives itself in node status events.
    #[arg(long, env = "NODE_NAME", default_value = "sightline-relay")]
    pub node_name: String,

    /// Longest wait between attempts to re-dial the peer service.
    #[arg(long, env = "SIGHTLINE_RELAY_RETRY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub retry_timeout: Duration,

    /// How long to wait for a peer to accept a connection and answer its first call.
    #[arg(long, env = "SIGHTLINE_RELAY_DIAL_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub dial_timeout: Duration,

    /// Responses held to order the merged stream by time.
    #[arg(long, env = "SIGHTLINE_RELAY_SORT_BUFFER_LEN_MAX", default_value_t = 100)]
    pub sort_buffer_len_max: usize,

    /// How long a response may wait in the sort buffer for older ones from slower peers.
    #[arg(long, env = "SIGHTLINE_RELAY_SORT_BUFFER_DRAIN_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub sort_buffer_drain_timeout: Duration,

    /// Connect to agents in plaintext (otherwise mutual TLS is required).
    #[arg(long, env = "SIGHTLINE_RELAY_DISABLE_CLIENT_TLS")]
    pub disable_client_tls: bool,

    /// Client certificate the relay presents to agents.
    #[arg(long, env = "SIGHTLINE_RELAY_TLS_HUBBLE_CLIENT_CERT_FILE")]
    pub tls_hubble_client_cert_file: Option<PathBuf>,

    /// Key of the client certificate.
    #[arg(long, env = "SIGHTLINE_RELAY_TLS_HUBBLE_CLIENT_KEY_FILE")]
    pub tls_hubble_client_key_file: Option<PathBuf>,

    /// CAs that sign the agents' server certificates.
    #[arg(long, env = "SIGHTLINE_RELAY_TLS_HUBBLE_SERVER_CA_FILES", value_delimiter = ',')]
    pub tls_hubble_server_ca_files: Vec<PathBuf>,

    /// Serve the relay's API in plaintext (otherwise TLS is required).
    #[arg(long, env = "SIGHTLINE_RELAY_DISABLE_SERVER_TLS")]
    pub disable_server_tls: bool,

    /// Server certificate of the relay's API.
    #[arg(long, env = "SIGHTLINE_RELAY_TLS_RELAY_SERVER_CERT_FILE")]
    pub tls_relay_server_cert_file: Option<PathBuf>,

    /// Key of the relay's server certificate.
    #[arg(long, env = "SIGHTLINE_RELAY_TLS_RELAY_SERVER_KEY_FILE")]
    pub tls_relay_server_key_file: Option<PathBuf>,

    /// CAs whose client certificates the relay's API accepts (enables mutual TLS).
    #[arg(long, env = "SIGHTLINE_RELAY_TLS_RELAY_CLIENT_CA_FILES", value_delimiter = ',')]
    pub tls_relay_client_ca_files: Vec<PathBuf>,

    #[command(flatten)]
    /// `--config-map` flags: where live configuration comes from.
    pub live: crate::live::LiveArgs,

    #[command(flatten)]
    /// `--log-level` and `--log-format`.
    pub log: LogArgs,

    /// The command line as given, which keeps winning over a re-read `--config`.
    #[arg(skip)]
    pub argv: Vec<OsString>,
}

#[derive(Debug, thiserror::Error)]
/// Why the flags were refused; printed as a usage error.
pub enum ConfigError {
    #[error(transparent)]
    /// The `--config` file is unreadable or names unknown keys.
    File(#[from] ConfigFileError),
    #[error(transparent)]
    /// clap refused a flag or its value.
    Flags(#[from] clap::Error),
    #[error("{0}")]
    /// Flags that parse but do not go together.
    Invalid(String),
}

impl sightline_common::edge::UsageError for ConfigError {
    fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        self
    }

    fn clap(&self) -> Option<&clap::Error> {
        match self {
            Self::Flags(error) => Some(error),
            _ => None,
        }
    }
}

impl Args {
    /// Parses flags, environment and the optional config file, then checks that the
    /// combination makes sense (e.g. TLS on without certificates is an error, not a
    /// silent fallback to plaintext).
    pub fn load(argv: Vec<OsString>) -> Result<Self, ConfigError> {
        let first = Self::try_parse_from(&argv)?;
        let mut args = match &first.config {
            Some(path) => Self::try_parse_from(config_file::merge(&Self::command(), path, argv.clone())?)?,
            None => first,
        };
        args.argv = argv;
        args.validate()?;
        Ok(args)
    }

    /// Checks what clap cannot: TLS flags that go together and the sort buffer's bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        if !self.disable_client_tls && self.tls_hubble_server_ca_files.is_empty() {
            return invalid("client TLS to agents needs --tls-hubble-server-ca-files (or pass --disable-client-tls)");
        }
        if self.tls_hubble_client_cert_file.is_some() != self.tls_hubble_client_key_file.is_some() {
            return invalid("--tls-hubble-client-cert-file and --tls-hubble-client-key-file go together");
        }
        if !self.disable_server_tls
            && (self.tls_relay_server_cert_file.is_none() || self.tls_relay_server_key_file.is_none())
        {
            return invalid(
                "server TLS needs --tls-relay-server-cert-file and --tls-relay-server-key-file (or pass --disable-server-tls)",
            );
        }
        if !(1..=crate::sort_buffer::MAX_CAPACITY).contains(&self.sort_buffer_len_max) {
            return invalid(&format!(
                "--sort-buffer-len-max must be between 1 and {}, not {}",
                crate::sort_buffer::MAX_CAPACITY,
                self.sort_buffer_len_max
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> Result<Args, ConfigError> {
        Args::load(
            std::iter::once("sightline-relay")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect(),
        )
    }

    #[test]
    fn defaults_match_hubble_relay() {
        let args = load(&["--disable-client-tls", "--disable-server-tls"]).expect("valid");
        assert_eq!(args.listen_address, ":4245");
        assert_eq!(args.sort_buffer_len_max, 100);
        assert_eq!(args.sort_buffer_drain_timeout, Duration::from_secs(1));
        assert_eq!(args.retry_timeout, Duration::from_secs(30));
        assert_eq!(args.cluster_name, "default");
    }

    #[test]
    fn tls_is_required_unless_disabled_explicitly() {
        let err = load(&["--disable-server-tls"]).expect_err("no CA");
        assert!(err.to_string().contains("--tls-hubble-server-ca-files"), "{err}");
        let err = load(&["--disable-client-tls"]).expect_err("no server cert");
        assert!(err.to_string().contains("--tls-relay-server-cert-file"), "{err}");
    }

    #[test]
    fn sort_buffer_length_out_of_range_is_named() {
        let plain = ["--disable-client-tls", "--disable-server-tls", "--sort-buffer-len-max"];
        for value in ["0", "2000000"] {
            let args: Vec<&str> = plain.iter().copied().chain([value]).collect();
            let err = load(&args).expect_err("out of range");
            assert!(err.to_string().contains(&format!("not {value}")), "{err}");
        }
        let args: Vec<&str> = plain.iter().copied().chain(["1048574"]).collect();
        assert!(load(&args).is_ok(), "the largest length is accepted");
    }

    #[test]
    fn config_file_fills_what_the_command_line_leaves_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "cluster-name: prod\nsort-buffer-len-max: 7\ndisable-client-tls: true\ndisable-server-tls: true\npeers: [a=10.0.0.1:4244, b=10.0.0.2]\n",
        )
        .expect("write");
        let path = path.to_str().expect("utf-8");
        let args = load(&["--config", path, "--sort-buffer-len-max", "9"]).expect("valid");
        assert_eq!(args.cluster_name, "prod");
        assert_eq!(args.sort_buffer_len_max, 9, "command line wins over the file");
        assert_eq!(args.peers, ["a=10.0.0.1:4244", "b=10.0.0.2"]);
        assert!(args.disable_client_tls);
    }

    #[test]
    fn config_file_mistakes_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "sort-bufer-len-max: 7\n").expect("write");
        let err = load(&["--config", path.to_str().expect("utf-8")]).expect_err("typo");
        assert!(err.to_string().contains("unknown key \"sort-bufer-len-max\""), "{err}");
        std::fs::write(
            &path,
            "sort-buffer-drain-timeout: soon\ndisable-client-tls: true\ndisable-server-tls: true\n",
        )
        .expect("write");
        let err = load(&["--config", path.to_str().expect("utf-8")]).expect_err("bad duration");
        assert!(err.to_string().contains("soon"), "{err}");
    }
}
