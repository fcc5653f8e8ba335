//! The agent's gRPC server: `observer.Observer`, `peer.Peer`, health and reflection,
//! on a TCP listener (TLS unless disabled) and on an always-plaintext unix socket.

pub(crate) mod tls;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use sightline_common::grpc_metrics::{GrpcServerMetrics, WithGrpcMetrics};
use sightline_common::listen::tls_incoming;
use sightline_common::names::HEALTH_SERVICE;
use sightline_common::net::nodelay_incoming;
use sightline_common::shutdown::Shutdown;
use sightline_common::tls::Reloading;
use sightline_proto::peer::peer_server::PeerServer;
use sightline_proto::reflection::{self, OBSERVER_SERVICE, PEER_SERVICE};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tonic::transport::server::{Connected, Router};
use tonic_health::ServingStatus;

use crate::observer::router::observer_router;
use crate::observer::service::ObserverService;
use crate::peer::PeerService;
pub(crate) use tls::{TlsError, TlsFiles};

/// How long open streams get to finish after shutdown is requested.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Longest unix socket path the kernel binds: `sun_path` is 108 bytes and ends in a NUL.
pub(crate) const MAX_SOCKET_PATH_BYTES: usize = 107;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {address}: {source}")]
    Listen { address: String, source: std::io::Error },
    #[error("cannot prepare unix socket {path}: {source}")]
    Socket { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// TCP address; `None` serves the unix socket only.
    pub listen_address: Option<SocketAddr>,
    pub socket_path: Option<PathBuf>,
    /// `None` serves plaintext on TCP.
    pub tls: Option<TlsFiles>,
    pub tls_reload_interval: Duration,
    /// Plaintext health-only listener for probes; `None` serves none.
    pub health_address: Option<SocketAddr>,
}

#[derive(Clone)]
pub struct Services {
    pub observer: ObserverService,
    pub(crate) peer: PeerService,
    /// Counts every call (`grpc_server_*`), as Hubble's go-grpc-prometheus interceptors do.
    pub grpc_metrics: GrpcServerMetrics,
}

/// A router with the gRPC metrics layer around its services.
type ApiRouter = Router<WithGrpcMetrics>;

/// Listeners bound, not serving yet: what they bound (an ephemeral port, say) can
/// still go into the services before [`Listeners::serve`].
pub(crate) struct Listeners {
    tcp: Option<TcpListener>,
    health: Option<TcpListener>,
    unix: Option<UnixListener>,
    socket_path: Option<PathBuf>,
    tls: Option<Arc<Reloading<ServerConfig>>>,
}

impl Listeners {
    pub(crate) async fn bind(options: &ServerOptions) -> Result<Self, ServerError> {
        let tls = match &options.tls {
            Some(files) => Some(tls::reloading(files, options.tls_reload_interval)?),
            None => None,
        };
        let tcp = bind_tcp(options.listen_address).await?;
        let health = bind_tcp(options.health_address).await?;
        let unix = match &options.socket_path {
            Some(path) => Some(bind_unix(path)?),
            None => None,
        };
        let socket_path = options.socket_path.clone().filter(|_| unix.is_some());
        Ok(Self {
            tcp,
            health,
            unix,
            socket_path,
            tls,
        })
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub(crate) fn serve(self, services: Services) -> BoundServer {
        BoundServer {
            tcp: self.tcp,
            health: self.health,
            unix: self.unix,
            socket_path: self.socket_path,
            tls: self.tls,
            services,
        }
    }
}

/// Listeners bound and ready; `run` serves until shutdown.
pub struct BoundServer {
    tcp: Option<TcpListener>,
    health: Option<TcpListener>,
    unix: Option<UnixListener>,
    socket_path: Option<PathBuf>,
    tls: Option<Arc<Reloading<ServerConfig>>>,
    services: Services,
}

impl BoundServer {
    pub async fn bind(options: &ServerOptions, services: Services) -> Result<Self, ServerError> {
        Ok(Listeners::bind(options).await?.serve(services))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound health-probe address, when one is served.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown`, then gives open streams [`SHUTDOWN_GRACE`] and
    /// removes the unix socket, so a clean stop leaves no stale path behind.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), ServerError> {
        let socket_path = self.socket_path.clone();
        let served = self.serve_all(shutdown).await;
        if let Some(path) = socket_path {
            remove_socket(&path);
        }
        served
    }

    async fn serve_all(self, shutdown: Shutdown) -> Result<(), ServerError> {
        let mut servers = tokio::task::JoinSet::new();
        if let Some(listener) = self.health {
            let (reporter, health) = tonic_health::server::health_reporter();
            reporter
                .set_service_status(HEALTH_SERVICE, ServingStatus::Serving)
                .await;
            let router = Server::builder()
                .layer(self.services.grpc_metrics.layer())
                .add_service(health);
            servers.spawn(serve(router, nodelay_incoming(listener), shutdown.clone()));
        }
        if let Some(listener) = self.unix {
            let router = router(&self.services).await?;
            let incoming = UnixListenerStream::new(listener);
            servers.spawn(serve(router, incoming, shutdown.clone()));
        }
        if let Some(listener) = self.tcp {
            let router = router(&self.services).await?;
            match self.tls {
                Some(config) => {
                    let incoming = tls_incoming(listener, config, shutdown.clone());
                    servers.spawn(serve(router, incoming, shutdown.clone()));
                }
                None => {
                    servers.spawn(serve(router, nodelay_incoming(listener), shutdown.clone()));
                }
            }
        }
        while let Some(result) = servers.join_next().await {
            match result {
                Ok(served) => served?,
                Err(join) => tracing::error!(%join, "server task failed"),
            }
        }
        Ok(())
    }
}

/// Binds an optional TCP listener, naming the address on failure.
async fn bind_tcp(address: Option<SocketAddr>) -> Result<Option<TcpListener>, ServerError> {
    let Some(address) = address else {
        return Ok(None);
    };
    let listener = sightline_common::listen::bind(address)
        .await
        .map_err(|source| ServerError::Listen {
            address: address.to_string(),
            source,
        })?;
    Ok(Some(listener))
}

/// Binds the socket so that its path is never reachable with a mode wider than
/// 0600: binding creates the file with the process umask (often 0755) and a chmod
/// afterwards leaves a window, and changing the umask would affect every thread.
/// So the socket is bound inside a fresh 0700 directory next to `path`, narrowed
/// there, and renamed into place (which also replaces a stale socket atomically).
fn bind_unix(path: &Path) -> Result<UnixListener, ServerError> {
    let err = |source| ServerError::Socket {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    if path.file_name().is_none() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the socket path has no file name",
        )));
    }
    let private = dir.join(format!(".{:08x}", fastrand::u32(..)));
    std::fs::DirBuilder::new().mode(0o700).create(&private).map_err(err)?;
    let staged = private.join("s");
    let bound = (|| {
        // The staged path is longer than `path` when the file name is shorter than
        // the private directory's: a `path` that fits the kernel's limit must not fail
        // there, so bind through the directory's descriptor, whose /proc path is short.
        let directory;
        let bind_at = if staged.as_os_str().len() > MAX_SOCKET_PATH_BYTES {
            directory = std::fs::File::open(&private)?;
            PathBuf::from(format!("/proc/self/fd/{}/s", directory.as_raw_fd()))
        } else {
            staged.clone()
        };
        let listener = UnixListener::bind(&bind_at)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    // Empty after a successful rename; after a failure, remove what was staged.
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    bound.map_err(err)
}

async fn router(services: &Services) -> Result<ApiRouter, ServerError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(HEALTH_SERVICE, ServingStatus::Serving)
        .await;
    Ok(Server::builder()
        .layer(services.grpc_metrics.layer())
        .add_service(health)
        .add_service(observer_router(services.observer.clone()))
        .add_service(PeerServer::new(services.peer.clone()))
        .add_service(reflection::v1(&[OBSERVER_SERVICE, PEER_SERVICE])?)
        .add_service(reflection::v1alpha(&[OBSERVER_SERVICE, PEER_SERVICE])?))
}

/// Removes our socket; a path that is no longer a socket (replaced by someone
/// else since) is left alone.
fn remove_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
        && let Err(error) = std::fs::remove_file(path)
    {
        tracing::warn!(path = %path.display(), %error, "unix socket not removed");
    }
}

async fn serve<S, IO, E>(router: ApiRouter, incoming: S, shutdown: Shutdown) -> Result<(), ServerError>
where
    S: tokio_stream::Stream<Item = Result<IO, E>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = router.serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
    // Follow streams never end by themselves: give them a grace period, then drop them.
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = graceful => Ok(served?),
        () = deadline => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    #[tokio::test]
    async fn the_socket_replaces_a_stale_file_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hubble.sock");
        std::fs::write(&path, "stale").unwrap();
        let _listener = bind_unix(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        let entries: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec![std::ffi::OsString::from("hubble.sock")]);
        tokio::net::UnixStream::connect(&path).await.unwrap();
    }
}
