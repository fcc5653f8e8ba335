//! Wires the agent together: ring, pipeline sink, Kubernetes metadata, peer source
//! and gRPC server.

use std::sync::Arc;

use tokio::sync::watch;

use crate::cli::{Args, CliError};
use crate::enrich::{IndexConfig, NodePeer, NodePeers};
use crate::event::EventSink;
use crate::k8s::{self, K8s, K8sError};
use crate::observer::ring::{self, RingError};
use crate::observer::service::{NodeIdentity, ObserverService};
use crate::observer::sink::{ObserverStats, RingSink};
use crate::peer::{Peer, PeerError, PeerService, StaticPeers, parse_peers};
use crate::server::{BoundServer, ServerError, ServerOptions, Services, TlsFiles};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Cli(#[from] CliError),
    #[error(transparent)]
    Ring(#[from] RingError),
    #[error(transparent)]
    Peers(#[from] PeerError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("kubernetes: {0}")]
    K8s(#[from] K8sError),
    #[error("TLS is on for --listen-address: set --tls-cert-file and --tls-key-file, or pass --disable-server-tls")]
    MissingTlsFiles,
}

/// A started agent: feed `pipeline()` (or `sink` directly, without enrichment), then
/// `server.run(shutdown)`.
pub struct Agent {
    pub node_name: String,
    pub sink: RingSink,
    pub server: BoundServer,
    /// The peer list `peer.Peer` announces: `--peers`, else the cluster's Nodes.
    pub peers: Arc<StaticPeers>,
    /// Kubernetes metadata, unless disabled or no cluster was found.
    pub k8s: Option<K8s>,
}

fn tls_files(args: &Args) -> Result<Option<TlsFiles>, AppError> {
    if args.disable_server_tls || args.listen_address.trim().is_empty() {
        return Ok(None);
    }
    match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_cas: args.tls_client_ca_files.clone(),
        })),
        _ => Err(AppError::MissingTlsFiles),
    }
}

impl Agent {
    pub async fn start(args: &Args) -> Result<Self, AppError> {
        let node_name = args.node_name();
        let tls = tls_files(args)?;
        let listen_address = args.listen_socket_address()?;
        let (writer, ring) = ring::ring(args.event_buffer_capacity)?;
        let stats = Arc::new(ObserverStats::default());
        let this = Peer {
            node_name: node_name.clone(),
            cluster_name: args.cluster_name.clone(),
            address: String::new(),
        };
        let identity = NodeIdentity {
            node_name: node_name.clone(),
            cluster_name: args.cluster_name.clone(),
            address: args.listen_address.clone(),
            tls_server_name: tls.as_ref().map(|_| this.tls_server_name()),
        };
        let observer = ObserverService::new(ring, stats.clone(), identity, args.lost_event_send_interval);
        let static_peers = parse_peers(&args.peers, &args.cluster_name)?;
        let peers_from_nodes = static_peers.is_empty();
        let peers = Arc::new(StaticPeers::new(static_peers));
        let peer = PeerService::new(peers.clone(), tls.is_some());
        let options = ServerOptions {
            listen_address,
            socket_path: args.socket_path(),
            tls,
            tls_reload_interval: args.tls_reload_interval,
        };
        let server = BoundServer::bind(&options, Services { observer, peer }).await?;
        let agent_port = server.local_addr().map_or(DEFAULT_AGENT_PORT, |a| a.port());
        let index = IndexConfig {
            cluster: args.cluster_name.clone(),
            local_node: node_name.clone(),
            agent_port,
        };
        let k8s = k8s::start(&args.k8s, index).await?;
        if let Some(k8s) = &k8s
            && peers_from_nodes
        {
            tokio::spawn(follow_node_peers(
                k8s.peers.clone(),
                peers.clone(),
                args.cluster_name.clone(),
            ));
        }
        Ok(Self {
            node_name,
            sink: RingSink::new(writer, stats),
            server,
            peers,
            k8s,
        })
    }

    /// The sink producers feed: the enricher in front of the ring when Kubernetes
    /// metadata is on, the ring itself otherwise. The returned pipeline borrows
    /// nothing, but `k8s` must stay alive for the index to keep following changes.
    pub fn pipeline(sink: RingSink, k8s: Option<&K8s>) -> Box<dyn EventSink> {
        match k8s {
            Some(k8s) => Box::new(k8s.enricher(sink)),
            None => Box::new(sink),
        }
    }
}

/// The port announced for peers when the agent serves no TCP (only its socket).
const DEFAULT_AGENT_PORT: u16 = 4244;

fn to_peer(node: &NodePeer, cluster: &str) -> Peer {
    let prefix = format!("{cluster}/");
    Peer {
        node_name: node.name.strip_prefix(&prefix).unwrap_or(&node.name).to_owned(),
        cluster_name: cluster.to_owned(),
        address: node.address.to_string(),
    }
}

/// Keeps the announced peers equal to the cluster's Nodes until the index goes away.
async fn follow_node_peers(mut nodes: NodePeers, peers: Arc<StaticPeers>, cluster: String) {
    loop {
        let current: Vec<Peer> = nodes.borrow_and_update().iter().map(|n| to_peer(n, &cluster)).collect();
        peers.replace(current);
        if nodes.changed().await.is_err() {
            return;
        }
    }
}

/// A shutdown signal every component can wait on.
pub fn shutdown_channel() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}
