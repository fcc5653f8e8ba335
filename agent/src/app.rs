//! Wires the agent together: ring, pipeline sink, Kubernetes metadata, peer source
//! and gRPC server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use sightline_common::shutdown::Shutdown;
use tokio::task::JoinHandle;

use sightline_common::listen::parse_listen_address;

use crate::cli::{Args, CliError};
use crate::datapath::{self, DatapathError};
use crate::enrich::{IndexConfig, NodePeer, NodePeers};
use crate::event::EventSink;
use crate::k8s::{self, K8s, K8sError};
use crate::observer::ring::{self, RingError};
use crate::observer::service::{NodeIdentity, ObserverService};
use crate::observer::sink::{ObserverStats, RingSink};
use crate::peer::{AnnouncedPeers, Peer, PeerError, PeerService, PeerSource, parse_peers};
use crate::server::{BoundServer, Listeners, ServerError, ServerOptions, Services, TlsFiles};
use crate::synthetic;

/// Why the agent could not start; each message names the flag or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A flag value that parses but cannot be used (listen address, socket path).
    #[error(transparent)]
    Cli(#[from] CliError),
    /// `--event-buffer-capacity` is not one less than a power of two within the ring's bounds.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A `--peers` entry that is not `name=address`, or a name given twice.
    #[error(transparent)]
    Peers(#[from] PeerError),
    /// The Hubble server could not bind its TCP address or unix socket, or read its TLS files.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// `--metrics` or `--dynamic-metrics-config-path` is invalid, or `/metrics` could not start.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::runtime::MetricsStartError),
    /// The static flow-log exporter (`--export-file-path` and friends) could not start.
    #[error("flow export: {0}")]
    Export(#[from] crate::export::ExportError),
    /// `--flowlogs-config-path` could not be read or followed.
    #[error(transparent)]
    FlowLogs(#[from] crate::export::dynamic::FlowLogsError),
    /// Kubernetes metadata was asked for but the client or a watch could not start.
    #[error("kubernetes: {0}")]
    K8s(#[from] K8sError),
    /// The live configuration (file or ConfigMap) was unreadable or invalid at start.
    #[error("configuration: {0}")]
    Live(#[from] crate::live::LiveConfigError),
    /// Server TLS is on (the default) without both a certificate and a key.
    #[error("TLS is on for --listen-address but {missing} is not set: set it, or pass --disable-server-tls")]
    MissingTlsFiles {
        /// The flags that are not set, e.g. `--tls-key-file`.
        missing: &'static str,
    },
}

/// A started agent: feed `pipeline()` (or `sink` directly, without enrichment), then
/// `server.run(shutdown)`.
pub struct Agent {
    /// The name this agent reports in `Flow.node_name` and `ServerStatus`, cluster-prefixed.
    pub node_name: String,
    /// Writes events into the observer ring without enrichment or metrics.
    pub sink: RingSink,
    /// The Hubble gRPC server, already bound; it serves nothing until `run` is awaited.
    pub server: BoundServer,
    /// The peer list `peer.Peer` announces: `--peers`, else the cluster's Nodes.
    pub peers: Arc<AnnouncedPeers>,
    /// Kubernetes metadata, unless disabled or no cluster was found.
    pub k8s: Option<K8s>,
    /// Flow metrics and `/metrics`; `metrics.wrap(sink)` puts them in the pipeline.
    pub metrics: crate::metrics::MetricsStage,
    /// The flow-log writer; join it after the pipeline ended to flush the last lines.
    pub export: Option<crate::export::ExportThread>,
    /// `--flowlogs-config-path` and the configuration's `flowlogs.yaml` exporters.
    pub flowlogs: crate::export::DynamicExporters,
    _flowlogs_file: Option<crate::export::dynamic::FileFollower>,
}

fn tls_files(args: &Args) -> Result<Option<TlsFiles>, AppError> {
    if args.disable_server_tls || args.listen_address.trim().is_empty() {
        return Ok(None);
    }
    let missing = |missing| Err(AppError::MissingTlsFiles { missing });
    match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_cas: args.tls_client_ca_files.clone(),
        })),
        (Some(_), None) => missing("--tls-key-file"),
        (None, Some(_)) => missing("--tls-cert-file"),
        (None, None) => missing("--tls-cert-file and --tls-key-file"),
    }
}

impl Agent {
    /// Binds the server and starts metrics, exporters and Kubernetes watches as `args`
    /// asks, but no event source: the caller feeds `sink` or `pipeline()`.
    ///
    /// # Errors
    /// An [`AppError`] naming the flag, file or address that stopped the start.
    pub async fn start(args: &Args) -> Result<Self, AppError> {
        let node_name = args.node_name();
        let tls = tls_files(args)?;
        let listen_address = args.listen_socket_address()?;
        let socket_path = args.checked_socket_path()?;
        let (writer, ring) = ring::ring(args.event_buffer_capacity)?;
        let stats = Arc::new(ObserverStats::default());
        let metrics = crate::metrics::MetricsStage::start(&args.metrics, ring.clone(), stats.clone()).await?;
        let export = crate::export::Exporter::start(&args.export, node_name.clone(), Some(metrics.lost_events()))?;
        let flowlogs = crate::export::DynamicExporters::new(node_name.clone(), Some(metrics.lost_events()))
            .with_metrics(metrics.dynamic_exporter_metrics());
        let flowlogs_file = match &args.export.flowlogs_config_path {
            Some(path) => Some(flowlogs.follow_file(path.clone())?),
            None => None,
        };
        let this = Peer {
            node_name: node_name.clone(),
            cluster_name: args.cluster_name.clone(),
            address: String::new(),
        };
        let static_peers = parse_peers(&args.peers, &args.cluster_name)?;
        let peers_from_nodes = static_peers.is_empty();
        let peers = Arc::new(AnnouncedPeers::new(static_peers));
        let peer = PeerService::new(peers.clone(), tls.is_some());
        let options = ServerOptions {
            listen_address,
            socket_path,
            tls,
            tls_reload_interval: args.tls_reload_interval,
            health_address: parse_listen_address(&args.health_listen_address).map_err(|error| CliError::Invalid {
                flag: "health-listen-address",
                value: args.health_listen_address.clone(),
                reason: error.to_string(),
            })?,
        };
        let listeners = Listeners::bind(&options).await?;
        let bound = listeners.local_addr();
        let node_ip = bound.filter(|address| address.ip().is_unspecified()).and_then(node_ip);
        let identity = NodeIdentity {
            node_name: node_name.clone(),
            cluster_name: args.cluster_name.clone(),
            address: dial_address(bound, node_ip, options.socket_path.as_deref()),
            tls_server_name: options.tls.as_ref().map(|_| this.tls_server_name()),
        };
        let server_address = identity.address.clone();
        let observer = ObserverService::new(ring, stats.clone(), identity, args.lost_event_send_interval)
            .announced_in(peers.subscribe())
            .counting_ring_losses_in(&metrics.lost_events());
        let server = listeners.serve(Services {
            observer,
            peer,
            grpc_metrics: metrics.grpc_metrics(),
        });
        let agent_port = server.local_addr().map_or(DEFAULT_AGENT_PORT, |a| a.port());
        let index = IndexConfig {
            cluster: args.cluster_name.clone(),
            local_node: node_name.clone(),
            agent_port,
        };
        let k8s = k8s::start(&args.k8s, index).await?;
        if let Some(k8s) = &k8s {
            k8s.index.notify_departures(metrics.departures());
        }
        match &k8s {
            Some(k8s) if peers_from_nodes => {
                tokio::spawn(follow_node_peers(
                    k8s.peers.clone(),
                    peers.clone(),
                    args.cluster_name.clone(),
                ));
            }
            // A lone agent (no --peers, no cluster) is still a cluster of one: a relay
            // in front of it must learn about it instead of showing nothing.
            None if peers_from_nodes => peers.replace(vec![Peer {
                address: server_address.clone(),
                ..this
            }]),
            _ => {}
        }
        let (mut tap, export) = match export {
            Some((tap, thread)) => (Some(tap), Some(thread)),
            None => (None, None),
        };
        let dynamic = flowlogs.clone();
        // One tap for both: the static exporter (if any) and the dynamic ones, which a
        // configuration change may add later.
        let sink = RingSink::new(writer, stats).with_tap(move |entry| {
            if let Some(tap) = &mut tap {
                tap.offer(entry);
            }
            dynamic.offer(entry);
        });
        Ok(Self {
            node_name,
            sink,
            flowlogs,
            _flowlogs_file: flowlogs_file,
            server,
            peers,
            k8s,
            metrics,
            export,
        })
    }

    /// The sink producers feed: the enricher in front of the ring when Kubernetes
    /// metadata is on, the ring itself otherwise. The returned pipeline borrows
    /// nothing, but `k8s` must stay alive for the index to keep following changes.
    pub fn pipeline<S: EventSink + 'static>(sink: S, k8s: Option<&K8s>) -> Box<dyn EventSink> {
        match k8s {
            Some(k8s) => Box::new(k8s.enricher(sink)),
            None => Box::new(sink),
        }
    }
}

/// Where a client dials this agent when the announced peers do not list it: the
/// bound TCP address (with the real port, also for `:0`), its unspecified host
/// replaced by `node_ip` when known; without TCP, the unix socket.
fn dial_address(bound: Option<SocketAddr>, node_ip: Option<IpAddr>, socket: Option<&Path>) -> String {
    match (bound, socket) {
        (Some(address), _) => match node_ip {
            Some(ip) if address.ip().is_unspecified() => SocketAddr::new(ip, address.port()).to_string(),
            _ => address.to_string(),
        },
        (None, Some(path)) => format!("unix://{}", path.display()),
        (None, None) => String::new(),
    }
}

/// This node's address for a listener bound to an unspecified host: the source
/// address the kernel would route an outside packet from (connecting a UDP socket
/// sends nothing). IPv4 first, as Hubble prefers; an IPv4-only listener gets IPv4 only.
fn node_ip(listener: SocketAddr) -> Option<IpAddr> {
    let routed = |local: IpAddr, remote: IpAddr| {
        let socket = std::net::UdpSocket::bind(SocketAddr::new(local, 0)).ok()?;
        socket.connect(SocketAddr::new(remote, 4244)).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
    };
    // Documentation prefixes (RFC 5737, RFC 3849): routed like any outside address.
    let v4 = || routed(Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::new(192, 0, 2, 1).into());
    let v6 = || {
        routed(
            Ipv6Addr::UNSPECIFIED.into(),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into(),
        )
    };
    match listener {
        SocketAddr::V4(_) => v4(),
        SocketAddr::V6(_) => v4().or_else(v6),
    }
}

/// The port announced for peers when the agent serves no TCP (only its socket).
const DEFAULT_AGENT_PORT: u16 = 4244;

fn to_peer(node: &NodePeer, cluster: &str) -> Peer {
    Peer {
        node_name: sightline_common::names::relative_node_name(cluster, &node.name).to_owned(),
        cluster_name: cluster.to_owned(),
        address: node.address.to_string(),
    }
}

/// Keeps the announced peers equal to the cluster's Nodes until the index goes away.
async fn follow_node_peers(mut nodes: NodePeers, peers: Arc<AnnouncedPeers>, cluster: String) {
    loop {
        let current: Vec<Peer> = nodes.borrow_and_update().iter().map(|n| to_peer(n, &cluster)).collect();
        peers.replace(current);
        if nodes.changed().await.is_err() {
            return;
        }
    }
}

/// A running agent: its event source and server, until [`RunningAgent::shutdown`].
/// The binary's `main` and the tests drive it the same way.
pub struct RunningAgent {
    /// The name this agent reports in flows and `ServerStatus`, cluster-prefixed.
    pub node_name: String,
    /// The bound TCP address of the Hubble server, when TCP is on.
    pub tcp_address: Option<SocketAddr>,
    /// The peer list `peer.Peer` announces; kept current from `--peers` or the Nodes.
    pub peers: Arc<AnnouncedPeers>,
    shutdown: Shutdown,
    /// `None` once `failed` has collected the task's end.
    source: Option<JoinHandle<Result<(), DatapathError>>>,
    server: Option<JoinHandle<Result<(), ServerError>>>,
    /// Stops `/metrics`.
    metrics_server: tokio_util::sync::CancellationToken,
    export: Option<crate::export::ExportThread>,
    /// Dropping it stops the Kubernetes watchers; kept until shutdown.
    _k8s: Option<K8s>,
    /// The configuration in force; dropping it stops following changes.
    pub live: crate::live::runtime::LiveConfig,
}

/// Why a running agent stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The event source (eBPF ring buffer or synthetic generator) failed.
    #[error("datapath: {0}")]
    Datapath(#[from] DatapathError),
    /// The gRPC server stopped with an error (accept loop, TLS reload).
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A task that should run until shutdown returned without an error; names the task.
    #[error("the {0} stopped unexpectedly")]
    Stopped(&'static str),
    /// A task panicked or was cancelled.
    #[error("the {what} task failed: {source}")]
    Panicked {
        /// Which task: `"event source"`, `"server"`, ...
        what: &'static str,
        /// The join error carrying the panic.
        source: tokio::task::JoinError,
    },
}

fn ended<E: Into<RunError>>(what: &'static str, joined: Result<Result<(), E>, tokio::task::JoinError>) -> RunError {
    match joined {
        Ok(Ok(())) => RunError::Stopped(what),
        Ok(Err(error)) => error.into(),
        Err(source) => RunError::Panicked { what, source },
    }
}

impl RunningAgent {
    /// Starts everything `args` asks for. The ring has one writer: the eBPF datapath
    /// or, for development without privileges, the synthetic source.
    pub async fn start(args: &Args) -> Result<Self, AppError> {
        let agent = Agent::start(args).await?;
        let client = agent.k8s.as_ref().and_then(|k8s| k8s.client.clone());
        let live = crate::live::runtime::start(
            args.argv.clone(),
            args,
            &agent.node_name,
            &agent.metrics,
            Some(agent.flowlogs.clone()),
            client,
        )?;
        let shutdown = Shutdown::new();
        let tcp_address = agent.server.local_addr();
        let metrics_server = agent.metrics.shutdown_token();
        let l7_stats = agent.metrics.l7_stats();
        let mut sink = Agent::pipeline(agent.metrics.wrap(agent.sink), agent.k8s.as_ref());
        let node_name = agent.node_name.clone();
        let source = if args.synthetic_flows_per_second > 0 {
            let (rate, node, stop) = (args.synthetic_flows_per_second, node_name.clone(), shutdown.clone());
            tokio::spawn(async move {
                synthetic::run(sink, node, rate, stop).await;
                Ok(())
            })
        } else {
            let (mut settings, node, stop) = (args.datapath.clone(), node_name.clone(), shutdown.clone());
            settings.l7.stats = l7_stats;
            let changes = live.datapath.clone();
            tokio::spawn(
                async move { datapath::run_live(settings, node, &mut sink, stop.cancelled_owned(), changes).await },
            )
        };
        let server = tokio::spawn(agent.server.run(shutdown.clone()));
        Ok(Self {
            node_name,
            tcp_address,
            peers: agent.peers,
            shutdown,
            source: Some(source),
            server: Some(server),
            metrics_server,
            export: agent.export,
            _k8s: agent.k8s,
            live,
        })
    }

    /// Completes when the event source or the server stops by itself, which is
    /// always an error: both run until shutdown.
    pub async fn failed(&mut self) -> RunError {
        let (Some(source), Some(server)) = (self.source.as_mut(), self.server.as_mut()) else {
            return RunError::Stopped("agent");
        };
        let (source_ended, error) = tokio::select! {
            joined = source => (true, ended("event source", joined)),
            joined = server => (false, ended("server", joined)),
        };
        if source_ended {
            self.source = None;
        } else {
            self.server = None;
        }
        error
    }

    /// Stops capturing, ends open streams (after the server's grace period),
    /// removes the unix socket, stops `/metrics` and writes out the export queue.
    pub async fn shutdown(self) -> Result<(), RunError> {
        self.shutdown.cancel();
        let mut first_error = None;
        if let Some(source) = self.source {
            first_error = first_error.or(collect("event source", source.await));
        }
        // The source's end dropped the pipeline and with it the export queue's sender.
        if let Some(export) = self.export {
            let _ = tokio::task::spawn_blocking(move || export.join()).await;
        }
        self.metrics_server.cancel();
        if let Some(server) = self.server {
            first_error = first_error.or(collect("server", server.await));
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn collect<E: Into<RunError>>(
    what: &'static str,
    joined: Result<Result<(), E>, tokio::task::JoinError>,
) -> Option<RunError> {
    match joined {
        Ok(Ok(())) => None,
        other => Some(ended(what, other)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_dial_address_is_the_bound_one_with_a_real_host() {
        let bound = |text: &str| Some(text.parse::<SocketAddr>().unwrap());
        let ip = |text: &str| Some(text.parse::<IpAddr>().unwrap());
        assert_eq!(dial_address(bound("[::]:4244"), ip("10.0.0.7"), None), "10.0.0.7:4244");
        assert_eq!(
            dial_address(bound("0.0.0.0:4244"), ip("fd00::7"), None),
            "[fd00::7]:4244"
        );
        assert_eq!(dial_address(bound("[::]:4244"), None, None), "[::]:4244");
        assert_eq!(
            dial_address(bound("127.0.0.1:40000"), ip("10.0.0.7"), None),
            "127.0.0.1:40000",
            "a specific host is kept"
        );
        let socket = Path::new("/run/sightline/hubble.sock");
        assert_eq!(
            dial_address(None, None, Some(socket)),
            "unix:///run/sightline/hubble.sock"
        );
        assert_eq!(dial_address(None, None, None), "");
    }
}
