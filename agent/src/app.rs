//! Wires the agent together: ring, pipeline sink, peer source and gRPC server.

use std::sync::Arc;

use tokio::sync::watch;

use crate::cli::{Args, CliError};
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
    #[error("TLS is on for --listen-address: set --tls-cert-file and --tls-key-file, or pass --disable-server-tls")]
    MissingTlsFiles,
}

/// A started agent: feed `sink`, then `server.run(shutdown)`.
pub struct Agent {
    pub node_name: String,
    pub sink: RingSink,
    pub server: BoundServer,
    pub peers: Arc<StaticPeers>,
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
        let peers = Arc::new(StaticPeers::new(parse_peers(&args.peers, &args.cluster_name)?));
        let peer = PeerService::new(peers.clone(), tls.is_some());
        let options = ServerOptions {
            listen_address,
            socket_path: args.socket_path(),
            tls,
            tls_reload_interval: args.tls_reload_interval,
        };
        let server = BoundServer::bind(&options, Services { observer, peer }).await?;
        Ok(Self {
            node_name,
            sink: RingSink::new(writer, stats),
            server,
            peers,
        })
    }
}

/// A shutdown signal every component can wait on.
pub fn shutdown_channel() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}
