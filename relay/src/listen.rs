//! Listening sockets: Go-style addresses (`:4245` = every interface) and a TLS
//! accept loop whose handshakes run beside the accept loop, so one slow or hostile
//! client cannot hold up the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::tls::Reloading;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `address`; a missing host (`:4245`) means all interfaces, IPv6 and IPv4.
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    match address.strip_prefix(':') {
        Some(port) => match TcpListener::bind(format!("[::]:{port}")).await {
            Ok(listener) => Ok(listener),
            // Hosts with IPv6 disabled.
            Err(_) => TcpListener::bind(format!("0.0.0.0:{port}")).await,
        },
        None => TcpListener::bind(address).await,
    }
}

/// Accepted and handshaken TLS connections, each with the configuration current at its handshake.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<Reloading<ServerConfig>>,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer): (TcpStream, SocketAddr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(config.current());
            let handshaken = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = handshaken.send(Ok(stream)).await;
                    }
                    Ok(Err(err)) => tracing::info!(%peer, %err, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
            if tx.is_closed() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}
