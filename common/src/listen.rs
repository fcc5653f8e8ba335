//! Listening sockets for every binary: Go-style addresses (`:4244` = every
//! interface, as Hubble's flags take them), binding, and a TLS accept loop whose
//! handshakes run beside the accept loop so that one slow or hostile client cannot
//! hold up the others.

use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::shutdown::Shutdown;
use crate::tls::Reloading;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listen address that does not parse; the text names the flag's value.
#[derive(Debug, thiserror::Error)]
#[error("invalid listen address {value:?}: {reason} (expected host:port, [ipv6]:port or :port)")]
pub struct ListenAddressError {
    value: String,
    reason: String,
}

/// Resolves a listen address: empty means "off" (`None`), `:port` every interface.
/// A host name is resolved once, here, so a typo fails at start-up.
pub fn parse_listen_address(text: &str) -> Result<Option<SocketAddr>, ListenAddressError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let full = match text.strip_prefix(':') {
        Some(port) => format!("[::]:{port}"),
        None => text.to_owned(),
    };
    let fail = |reason: String| ListenAddressError {
        value: text.to_owned(),
        reason,
    };
    full.to_socket_addrs()
        .map_err(|error| fail(error.to_string()))?
        .next()
        .map(Some)
        .ok_or_else(|| fail("resolves to no address".into()))
}

/// Binds `address`; an unspecified IPv6 host falls back to IPv4 on hosts with IPv6
/// turned off, so `:4244` works everywhere.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    match TcpListener::bind(address).await {
        Err(error) if address.ip() == std::net::Ipv6Addr::UNSPECIFIED => {
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), address.port());
            TcpListener::bind(v4).await.map_err(|_| error)
        }
        bound => bound,
    }
}

/// Accepted and handshaken TLS connections, each with the configuration current at
/// its handshake; the loop ends when `shutdown` is cancelled.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<Reloading<ServerConfig>>,
    shutdown: Shutdown,
) -> ReceiverStream<std::io::Result<TlsConnection>> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, typically: do not spin on it.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = shutdown.cancelled() => return,
            };
            // A stream's last small writes must not wait for a delayed ACK (see `net`).
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%peer, %error, "TCP_NODELAY not set");
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(config.current());
            let handshaken = sender.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = handshaken.send(Ok(TlsConnection { inner: tls, peer })).await;
                    }
                    Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake refused"),
                    Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                }
            });
            if sender.is_closed() {
                return;
            }
        }
    });
    ReceiverStream::new(receiver)
}

/// A server-side TLS connection as tonic sees it, with the client's address.
pub struct TlsConnection {
    inner: TlsStream<TcpStream>,
    peer: SocketAddr,
}

impl Connected for TlsConnection {
    type ConnectInfo = SocketAddr;

    fn connect_info(&self) -> SocketAddr {
        self.peer
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn listen_address_forms() {
        assert_eq!(
            parse_listen_address(":4244").unwrap(),
            Some("[::]:4244".parse().unwrap())
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:0").unwrap(),
            Some("127.0.0.1:0".parse().unwrap())
        );
        assert_eq!(
            parse_listen_address("[::1]:9").unwrap(),
            Some("[::1]:9".parse().unwrap())
        );
        assert_eq!(parse_listen_address("  ").unwrap(), None);
        let error = parse_listen_address("4244").unwrap_err().to_string();
        assert!(error.contains("\"4244\""), "{error}");
        assert!(parse_listen_address(":http").is_err());
    }
}
