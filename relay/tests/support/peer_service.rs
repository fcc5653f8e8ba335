//! A fake `peer.Peer` service whose announcements the test scripts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sightline_proto::peer::peer_server::{Peer, PeerServer};
use sightline_proto::peer::{ChangeNotification, NotifyRequest};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::killable::Killable;
use tonic::{Request, Response, Status};

#[derive(Clone)]
struct Service {
    initial: Arc<Mutex<Vec<ChangeNotification>>>,
    updates: broadcast::Sender<ChangeNotification>,
    notify_calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl Peer for Service {
    type NotifyStream = ReceiverStream<Result<ChangeNotification, Status>>;

    async fn notify(&self, _: Request<NotifyRequest>) -> Result<Response<Self::NotifyStream>, Status> {
        self.notify_calls.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel(64);
        let (initial, mut updates) = (self.initial.lock().unwrap().clone(), self.updates.subscribe());
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
    service: Service,
    connections: Killable,
}

impl FakePeerService {
    pub async fn start(initial: Vec<ChangeNotification>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let service = Self {
            address: listener.local_addr().unwrap(),
            service: Service {
                initial: Arc::new(Mutex::new(initial)),
                updates: broadcast::channel(64).0,
                notify_calls: Arc::default(),
            },
            connections: Killable::default(),
        };
        service.serve(listener);
        service
    }

    fn serve(&self, listener: TcpListener) {
        let incoming = ReceiverStream::new(self.connections.accept(listener)).map(Ok::<_, std::io::Error>);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(PeerServer::new(self.service.clone()))
                .serve_with_incoming(incoming),
        );
    }

    /// Like a crash of the agent serving it: listener closed, every connection reset.
    pub fn kill(&mut self) {
        self.connections.kill();
    }

    /// Serves again on the same port; new Notify streams start with `initial`.
    pub async fn restart(&mut self, initial: Vec<ChangeNotification>) {
        *self.service.initial.lock().unwrap() = initial;
        self.serve(TcpListener::bind(self.address).await.unwrap());
    }

    /// Serves on a unix socket at `path` (plaintext, as node-local peer services are).
    pub async fn start_unix(path: &std::path::Path, initial: Vec<ChangeNotification>) -> Self {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let service = Service {
            initial: Arc::new(Mutex::new(initial)),
            updates: broadcast::channel(64).0,
            notify_calls: Arc::default(),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(PeerServer::new(service.clone()))
                .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
        );
        Self {
            address: "0.0.0.0:0".parse().unwrap(),
            service,
            connections: Killable::default(),
        }
    }

    /// Notify calls served so far (each is a relay that dialled in).
    pub fn notify_calls(&self) -> usize {
        self.service.notify_calls.load(Ordering::SeqCst)
    }

    pub fn announce(&self, change: ChangeNotification) {
        self.service.updates.send(change).unwrap();
    }
}

impl Drop for FakePeerService {
    fn drop(&mut self) {
        self.kill();
    }
}
