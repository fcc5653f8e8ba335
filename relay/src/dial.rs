//! Opening gRPC channels to Hubble servers: unix sockets in plaintext, TCP with
//! TLS 1.3 verified against the server name the peer announced (or plaintext when
//! the operator disabled client TLS). The TLS configuration is read at each
//! handshake, so rotated certificates apply to the next connection.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::BufReader;
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

use sightline_proto::codec::STREAM_MAX_FRAME_SIZE;

use crate::address::PeerAddress;
use crate::coalesce::Coalescing;
use crate::low_water::LowWater;
use crate::tls::Reloading;

/// How often an idle connection is probed; a vanished peer is noticed within
/// interval + timeout even when no stream is moving.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
/// Why a connection to one agent could not be made; the pool retries with backoff.
pub enum DialError {
    #[error("client TLS is on but the peer announced no TLS server name")]
    /// TLS is on but the peer announced no server name to verify.
    MissingServerName,
    #[error("peer announced TLS server name {0:?} but client TLS is disabled")]
    /// The peer announced a TLS server name while TLS to agents is disabled.
    UnexpectedServerName(String),
    #[error("invalid TLS server name {0:?}")]
    /// The announced TLS server name is not a valid DNS name.
    InvalidServerName(String),
    #[error("connecting: {0}")]
    /// The connection failed.
    Transport(#[from] tonic::transport::Error),
    #[error("connecting: timed out after {0:?}")]
    /// The connection did not complete within `--dial-timeout`.
    Timeout(Duration),
}

/// Agents' byte streams reach h2 with runs of DATA frames joined (see [`crate::coalesce`]).
fn joined<T>(stream: T) -> Coalescing<T> {
    Coalescing::new(stream, STREAM_MAX_FRAME_SIZE)
}

/// Socket reads under TLS: 16 of rustls's reads, a quarter of a low-water batch.
const TLS_READ_SIZE: usize = 64 * 1024;

type Connecting<'a> = std::pin::Pin<Box<dyn Future<Output = Result<Channel, tonic::transport::Error>> + Send + 'a>>;

#[derive(Clone)]
/// Opens channels to agents with the relay's client TLS and the current dial timeout.
pub struct Dialer {
    tls: Option<Arc<Reloading<ClientConfig>>>,
    /// Nanoseconds, shared by every clone so a new `--dial-timeout` reaches every
    /// later dial (and the calls that use it as their answer timeout).
    timeout: Arc<std::sync::atomic::AtomicU64>,
}

fn nanos(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX)
}

impl Dialer {
    /// A dialer with client TLS (`None`: plaintext) and the initial dial timeout.
    pub fn new(tls: Option<Arc<Reloading<ClientConfig>>>, timeout: Duration) -> Self {
        Self {
            tls,
            timeout: Arc::new(std::sync::atomic::AtomicU64::new(nanos(timeout))),
        }
    }

    /// Applies to dials that start from now on; those under way keep theirs.
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout.store(nanos(timeout), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether channels use TLS (and so peers must announce a server name).
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The dial timeout in force now.
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Connects to `address`. Unix sockets never use TLS (they are node-local and
    /// protected by file permissions), as with Hubble.
    pub async fn connect(&self, address: &PeerAddress, server_name: Option<&str>) -> Result<Channel, DialError> {
        let timeout = self.timeout();
        let endpoint = Endpoint::from_static("http://hubble.invalid")
            .connect_timeout(timeout)
            .tcp_nodelay(true)
            .max_frame_size(STREAM_MAX_FRAME_SIZE)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let connecting = match address {
            PeerAddress::Unix(path) => {
                let path = path.clone();
                let connector = service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { UnixStream::connect(path).await.map(|unix| TokioIo::new(joined(unix))) }
                });
                Box::pin(endpoint.connect_with_connector(connector)) as Connecting<'_>
            }
            PeerAddress::Tcp(host_port) => match (&self.tls, server_name) {
                (None, Some(name)) => return Err(DialError::UnexpectedServerName(name.to_owned())),
                (None, None) => {
                    let host_port = host_port.clone();
                    let connector = service_fn(move |_: Uri| {
                        let host_port = host_port.clone();
                        async move {
                            let tcp = TcpStream::connect(host_port).await?;
                            tcp.set_nodelay(true)?;
                            Ok::<_, std::io::Error>(TokioIo::new(joined(LowWater::new(tcp))))
                        }
                    });
                    Box::pin(endpoint.connect_with_connector(connector)) as Connecting<'_>
                }
                (Some(_), None) => return Err(DialError::MissingServerName),
                (Some(tls), Some(name)) => {
                    let name = ServerName::try_from(name.to_owned())
                        .map_err(|_| DialError::InvalidServerName(name.to_owned()))?;
                    let (tls, host_port) = (tls.clone(), host_port.clone());
                    let connector = service_fn(move |_: Uri| {
                        let (tls, host_port, name) = (tls.clone(), host_port.clone(), name.clone());
                        async move {
                            let tcp = TcpStream::connect(host_port).await?;
                            tcp.set_nodelay(true)?;
                            // rustls reads 4 KiB at a time: serve those from one larger
                            // socket read instead of a system call each.
                            let socket = BufReader::with_capacity(TLS_READ_SIZE, LowWater::new(tcp));
                            let stream = TlsConnector::from(tls.current()).connect(name, socket).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(joined(stream)))
                        }
                    });
                    Box::pin(endpoint.connect_with_connector(connector)) as Connecting<'_>
                }
            },
        };
        tokio::time::timeout(timeout, connecting)
            .await
            .map_err(|_| DialError::Timeout(timeout))?
            .map_err(Into::into)
    }
}
