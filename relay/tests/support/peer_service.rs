//! A fake `peer.Peer` service whose announcements the test scripts.

use std::net::SocketAddr;

use sightline_proto::peer::peer_server::{Peer, PeerServer};
use sightline_proto::peer::{ChangeNotification, NotifyRequest};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

#[derive(Clone)]
struct Service {
    initial: Vec<ChangeNotification>,
    updates: broadcast::Sender<ChangeNotification>,
}

#[tonic::async_trait]
impl Peer for Service {
    type NotifyStream = ReceiverStream<Result<ChangeNotification, Status>>;

    async fn notify(&self, _: Request<NotifyRequest>) -> Result<Response<Self::NotifyStream>, Status> {
        let (tx, rx) = mpsc::channel(64);
        let (initial, mut updates) = (self.initial.clone(), self.updates.subscribe());
        tokio::spawn(async move {
            for change in initial {
                if tx.send(Ok(change)).await.is_err() {
                    return;
                }
            }
            while let Ok(change) = updates.recv().await {
                if tx.send(Ok(change)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

pub struct FakePeerService {
    pub address: SocketAddr,
    updates: broadcast::Sender<ChangeNotification>,
}

impl FakePeerService {
    pub async fn start(initial: Vec<ChangeNotification>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let updates = broadcast::channel(64).0;
        let service = Service {
            initial,
            updates: updates.clone(),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(PeerServer::new(service))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Self { address, updates }
    }

    /// Serves on a unix socket at `path` (plaintext, as node-local peer services are).
    pub async fn start_unix(path: &std::path::Path, initial: Vec<ChangeNotification>) -> Self {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let updates = broadcast::channel(64).0;
        let service = Service {
            initial,
            updates: updates.clone(),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(PeerServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
        );
        Self {
            address: "0.0.0.0:0".parse().unwrap(),
            updates,
        }
    }

    pub fn announce(&self, change: ChangeNotification) {
        self.updates.send(change).unwrap();
    }
}
