//! The agent's command line. Every flag can also come from the environment
//! (`SIGHTLINE_<FLAG>`) and from a YAML or TOML file given with `--config`, whose
//! keys are the flag names (`listen-address` or `listen_address`).
//! Precedence: command line, then environment, then file, then default.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use sightline_common::config_file::{self, ConfigFileError};
use sightline_common::duration::parse_duration;
use sightline_common::listen::{ListenAddressError, parse_listen_address};
use sightline_common::logging::LogArgs;

/// A command line, environment or `--config` file the agent cannot start with.
/// Found while loading [`Args`], it is a usage error (exit 2); the checks made
/// later at start-up (listen address, socket path) end as a start-up error (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// An unknown flag or a value clap refused; also `--help` and `--version`,
    /// which clap reports as errors of their own kind.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The `--config` file is unreadable, malformed or has a key that is no flag.
    #[error(transparent)]
    ConfigFile(#[from] ConfigFileError),
    /// `--listen-address` is neither empty, `:port` nor `host:port`.
    #[error("--listen-address: {0}")]
    ListenAddress(#[from] ListenAddressError),
    /// The `node-profiles.yaml` next to `--config` could not be read for this node.
    #[error(transparent)]
    Profile(#[from] crate::live::LiveConfigError),
    /// A value that parsed but cannot be used, e.g. a `--socket-path` too long to bind.
    #[error("invalid --{flag} {value:?}: {reason}")]
    Invalid {
        /// The long flag name without dashes.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it and what would be accepted.
        reason: String,
    },
}

impl sightline_common::edge::UsageError for CliError {
    fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        self
    }

    fn clap(&self) -> Option<&clap::Error> {
        match self {
            Self::Clap(error) => Some(error),
            _ => None,
        }
    }
}

/// Sightline node agent: captures flows with eBPF and serves the Hubble API.
#[derive(Debug, Clone, Parser)]
#[command(name = "sightline-agent", version, args_override_self = true)]
pub struct Args {
    /// YAML (.yaml/.yml) or TOML (.toml) file with flag values.
    #[arg(long, env = "SIGHTLINE_CONFIG")]
    pub config: Option<PathBuf>,

    /// TCP address of the Hubble server (`:4244` = all interfaces); empty disables TCP.
    #[arg(long, env = "SIGHTLINE_LISTEN_ADDRESS", default_value = ":4244")]
    pub listen_address: String,

    /// Plaintext gRPC health endpoint (`grpc.health.v1`, nothing else) for the kubelet's
    /// probes, which cannot speak TLS; empty disables it.
    #[arg(long, env = "SIGHTLINE_HEALTH_LISTEN_ADDRESS", default_value = "")]
    pub health_listen_address: String,

    /// Unix socket of the Hubble server (plaintext, mode 0600); empty disables it.
    #[arg(
        long,
        env = "SIGHTLINE_SOCKET_PATH",
        default_value = "/var/run/sightline/hubble.sock"
    )]
    pub socket_path: String,

    /// This node's name [default: $NODE_NAME, else the hostname].
    #[arg(long, env = "SIGHTLINE_NODE_NAME")]
    pub node_name: Option<String>,

    /// Cluster name (prefixes node names and TLS server names).
    #[arg(long, env = "SIGHTLINE_CLUSTER_NAME", default_value = "default")]
    pub cluster_name: String,

    /// Events kept in the observer ring: 2^n - 1, at most 1048575.
    #[arg(long, env = "SIGHTLINE_EVENT_BUFFER_CAPACITY", default_value_t = crate::observer::ring::DEFAULT_CAPACITY)]
    pub event_buffer_capacity: usize,

    /// How often a client that fell behind is told how many events it missed.
    #[arg(long, env = "SIGHTLINE_LOST_EVENT_SEND_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub lost_event_send_interval: Duration,

    /// The cluster's agents for peer.Peer, as `name=host:port,...`.
    #[arg(long, env = "SIGHTLINE_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,

    /// Serve plaintext on TCP (the unix socket is always plaintext).
    #[arg(long, env = "SIGHTLINE_DISABLE_SERVER_TLS")]
    pub disable_server_tls: bool,

    /// Server certificate chain (PEM).
    #[arg(long, env = "SIGHTLINE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// Server private key (PEM).
    #[arg(long, env = "SIGHTLINE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

    /// CAs whose client certificates are accepted; when set, clients must present one.
    #[arg(long, env = "SIGHTLINE_TLS_CLIENT_CA_FILES", value_delimiter = ',')]
    pub tls_client_ca_files: Vec<PathBuf>,

    /// How often the TLS files are checked for changes.
    #[arg(long, env = "SIGHTLINE_TLS_RELOAD_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,

    /// Feed this many synthetic flows per second into the ring instead of capturing
    /// packets (a development aid that needs no privileges; 0 = capture with eBPF).
    #[arg(long, env = "SIGHTLINE_SYNTHETIC_FLOWS_PER_SECOND", default_value_t = 0)]
    pub synthetic_flows_per_second: u64,

    /// eBPF attachment, interfaces, aggregation and drop-event settings.
    #[command(flatten)]
    pub datapath: crate::datapath::DatapathArgs,

    /// Whether and how Kubernetes metadata is watched.
    #[command(flatten)]
    pub k8s: crate::k8s::K8sArgs,

    /// Hubble's `--metrics` list and the `/metrics` server.
    #[command(flatten)]
    pub metrics: crate::metrics::MetricsArgs,

    /// Hubble's flow-log exporter flags (`--export-file-*`, `--flowlogs-config-path`).
    #[command(flatten)]
    pub export: crate::export::ExportArgs,

    /// The operator's ConfigMap and the generation Lease.
    #[command(flatten)]
    pub live: crate::live::LiveArgs,

    /// `--log-level` and `--log-format`.
    #[command(flatten)]
    pub log: LogArgs,

    /// The command line as given, which keeps winning over a re-read `--config`.
    #[arg(skip)]
    pub argv: Vec<OsString>,
}

impl Args {
    /// Parses the process's command line, environment and `--config` file.
    ///
    /// # Errors
    /// [`CliError`] naming the flag, key or file that was refused.
    pub fn load() -> Result<Self, CliError> {
        Self::load_from(std::env::args_os().collect())
    }

    /// [`Args::load`] for an explicit `argv` (the first element is the program name).
    /// A `--config` file is merged under the command line and the environment, after
    /// swapping in this node's profile file when `node-profiles.yaml` names the node.
    ///
    /// # Errors
    /// [`CliError`] naming the flag, key or file that was refused.
    pub fn load_from(argv: Vec<OsString>) -> Result<Self, CliError> {
        let mut first = Self::try_parse_from(&argv)?;
        let Some(path) = first.config.clone() else {
            first.argv = argv;
            return Ok(first);
        };
        let path = crate::live::runtime::startup_config(&path, &first.node_name())?;
        let mut args = Self::try_parse_from(config_file::merge(&Self::command(), &path, argv.clone())?)?;
        args.argv = argv;
        Ok(args)
    }

    /// The node this agent runs on: `--node-name`, else `$NODE_NAME`, else the
    /// kernel's hostname, else `localhost`. Not cluster-prefixed.
    pub fn node_name(&self) -> String {
        self.node_name
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(hostname)
    }

    /// The TCP address to bind, `None` when TCP is disabled.
    pub fn listen_socket_address(&self) -> Result<Option<SocketAddr>, CliError> {
        Ok(parse_listen_address(&self.listen_address)?)
    }

    /// The unix socket to serve on, `None` when `--socket-path` is empty; not checked
    /// against the kernel's length limit (see [`Args::checked_socket_path`]).
    pub fn socket_path(&self) -> Option<PathBuf> {
        (!self.socket_path.trim().is_empty()).then(|| PathBuf::from(self.socket_path.trim()))
    }

    /// [`Args::socket_path`], refused at start-up when the kernel could not bind it
    /// (the bind error would name neither the flag nor the limit).
    pub fn checked_socket_path(&self) -> Result<Option<PathBuf>, CliError> {
        let Some(path) = self.socket_path() else {
            return Ok(None);
        };
        let length = path.as_os_str().len();
        if length > crate::server::MAX_SOCKET_PATH_BYTES {
            return Err(CliError::Invalid {
                flag: "socket-path",
                value: path.display().to_string(),
                reason: format!(
                    "{length} bytes; a unix socket path holds at most {} (the kernel's sun_path is {} bytes with the terminating NUL)",
                    crate::server::MAX_SOCKET_PATH_BYTES,
                    crate::server::MAX_SOCKET_PATH_BYTES + 1
                ),
            });
        }
        Ok(Some(path))
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn argv(list: &[&str]) -> Vec<OsString> {
        std::iter::once("sightline-agent")
            .chain(list.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn config_file_values_yield_to_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("agent.yaml");
        std::fs::write(&yaml, "cluster-name: prod\nevent_buffer_capacity: 1023\npeers: [a=1.2.3.4:4244, b=5.6.7.8:4244]\ndisable-server-tls: true\n").unwrap();
        let args = Args::load_from(argv(&["--config", yaml.to_str().unwrap(), "--cluster-name", "cli"])).unwrap();
        assert_eq!(args.cluster_name, "cli");
        assert_eq!(args.event_buffer_capacity, 1023);
        assert_eq!(args.peers, vec!["a=1.2.3.4:4244", "b=5.6.7.8:4244"]);
        assert!(args.disable_server_tls);

        let toml = dir.path().join("agent.toml");
        std::fs::write(
            &toml,
            "listen-address = \"127.0.0.1:0\"\nlost_event_send_interval = \"250ms\"\n",
        )
        .unwrap();
        let args = Args::load_from(argv(&["--config", toml.to_str().unwrap()])).unwrap();
        assert_eq!(args.listen_address, "127.0.0.1:0");
        assert_eq!(args.lost_event_send_interval, Duration::from_millis(250));

        std::fs::write(&toml, "no-such-flag = 1\n").unwrap();
        assert!(matches!(
            Args::load_from(argv(&["--config", toml.to_str().unwrap()])),
            Err(CliError::ConfigFile(ConfigFileError::UnknownKey { .. }))
        ));
    }

    #[test]
    fn listen_address_forms() {
        let args = Args::load_from(argv(&["--listen-address", ":4244"])).unwrap();
        assert_eq!(
            args.listen_socket_address().unwrap(),
            Some("[::]:4244".parse().unwrap())
        );
        let args = Args::load_from(argv(&["--listen-address", ""])).unwrap();
        assert_eq!(args.listen_socket_address().unwrap(), None);
    }
}
