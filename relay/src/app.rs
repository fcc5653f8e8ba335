//! Assembles the relay from its parts and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_common::listen;
use sightline_common::metrics_server::{MetricsServer, MetricsServerError, MetricsServerOptions, MetricsTlsFiles};
use sightline_common::names::HEALTH_SERVICE;
use sightline_common::net::nodelay_incoming;
use sightline_common::shutdown::Shutdown;
use sightline_proto::reflection::{self, OBSERVER_SERVICE};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::address::PeerAddress;
use crate::config::Args;
use crate::dial::Dialer;
use crate::discovery::{self, PeerChange};
use crate::fanout::FanoutSettings;
use crate::metrics::RelayMetrics;
use crate::pool::{PeerState, Pool};
use crate::router::relay_router;
use crate::server::RelayObserver;
use crate::tls::{self, KeyPairFiles, RELOAD_CHECK_INTERVAL, Reloading, TlsError};

/// Open streams get this long to end after SIGTERM before the process exits anyway;
/// with the rest of shutdown the relay is gone within 5 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

#[derive(Debug, thiserror::Error)]
/// Why the relay could not start; each names the flag or file to fix.
pub enum RelayError {
    #[error("TLS: {0}")]
    /// The TLS material did not load.
    Tls(#[from] TlsError),
    #[error("peers: {0}")]
    /// The static peer list or the peer service address is malformed.
    Discovery(#[from] discovery::DiscoveryError),
    #[error("peer service address: {0}")]
    /// The peer service address does not parse.
    Address(#[from] crate::address::AddressError),
    #[error("binding {what} on {address}: {source}")]
    /// A listener could not be bound.
    Bind {
        /// Which listener (API, metrics, ...).
        what: &'static str,
        /// The address as configured.
        address: String,
        /// The bind failure.
        source: std::io::Error,
    },
    #[error("reflection: {0}")]
    /// The reflection service could not be built from the descriptors.
    Reflection(#[from] sightline_proto::reflection::ReflectionError),
    #[error(transparent)]
    /// The metrics server could not start.
    MetricsServer(#[from] MetricsServerError),
    #[error(transparent)]
    /// The live configuration could not be set up.
    Live(#[from] crate::live::LiveError),
}

/// A running relay; dropping it does not stop it, `shutdown` does.
pub struct RunningRelay {
    /// The address the Hubble API listens on (the kernel's port when 0 was asked).
    pub api_address: SocketAddr,
    /// The address of `/metrics`, when enabled.
    pub metrics_address: Option<SocketAddr>,
    /// The agents the relay knows and their connection state.
    pub pool: Pool,
    shutdown: Shutdown,
    server: JoinHandle<()>,
}

impl RunningRelay {
    /// Ends every client stream, stops listening and waits (at most [`SHUTDOWN_GRACE`]).
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server).await.is_err() {
            tracing::warn!("open streams did not end within {SHUTDOWN_GRACE:?}; exiting anyway");
        }
    }
}

/// Binds a Go-style listen address (`:4245` = every interface).
async fn bind(what: &'static str, address: &str) -> Result<TcpListener, RelayError> {
    let bind_error = |source| RelayError::Bind {
        what,
        address: address.to_owned(),
        source,
    };
    let parsed = listen::parse_listen_address(address)
        .map_err(|error| bind_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, error)))?
        .ok_or_else(|| bind_error(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty address")))?;
    listen::bind(parsed).await.map_err(bind_error)
}

fn client_tls(args: &Args) -> Result<Option<Arc<Reloading<rustls::ClientConfig>>>, RelayError> {
    if args.disable_client_tls {
        return Ok(None);
    }
    let identity = match (&args.tls_hubble_client_cert_file, &args.tls_hubble_client_key_file) {
        (Some(cert), Some(key)) => Some(KeyPairFiles {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let cas = args.tls_hubble_server_ca_files.clone();
    let mut files = cas.clone();
    files.extend(identity.iter().flat_map(|id| [id.cert.clone(), id.key.clone()]));
    let load = move || tls::client_config(&cas, identity.as_ref());
    Ok(Some(Reloading::watch(
        "relay client certificate",
        files,
        RELOAD_CHECK_INTERVAL,
        load,
    )?))
}

fn server_tls(args: &Args) -> Result<Option<Arc<Reloading<rustls::ServerConfig>>>, RelayError> {
    let (false, Some(cert), Some(key)) = (
        args.disable_server_tls,
        &args.tls_relay_server_cert_file,
        &args.tls_relay_server_key_file,
    ) else {
        return Ok(None);
    };
    let identity = KeyPairFiles {
        cert: cert.clone(),
        key: key.clone(),
    };
    let cas = args.tls_relay_client_ca_files.clone();
    let mut files = vec![identity.cert.clone(), identity.key.clone()];
    files.extend(cas.iter().cloned());
    let load = move || tls::server_config(&identity, &cas);
    Ok(Some(Reloading::watch(
        "relay server certificate",
        files,
        RELOAD_CHECK_INTERVAL,
        load,
    )?))
}

/// Starts discovery, the pool, the API, health and metrics. Must run inside a Tokio runtime.
pub async fn start(args: Args) -> Result<RunningRelay, RelayError> {
    let shutdown = Shutdown::new();
    let dialer = Dialer::new(client_tls(&args)?, args.dial_timeout);
    let pool = Pool::new(dialer.clone());
    let metrics = RelayMetrics::new();

    let (retry_timeout, retry_timeouts) = watch::channel(args.retry_timeout);
    let (discovery_up, discovery_state) = watch::channel(false);
    if args.peers.is_empty() {
        let service = PeerAddress::parse(&args.peer_service)?;
        let (changes_tx, mut changes_rx) = mpsc::channel::<PeerChange>(256);
        let server_name = Some(sightline_common::names::peer_service_server_name(&args.cluster_name));
        let follow = discovery::follow_peer_service(
            dialer.clone(),
            service,
            server_name,
            retry_timeouts,
            changes_tx,
            discovery_up,
        );
        let token = shutdown.clone();
        tokio::spawn(async move { token.run_until_cancelled(follow).await });
        let pool = pool.clone();
        tokio::spawn(async move {
            while let Some(change) = changes_rx.recv().await {
                pool.apply(change);
            }
        });
    } else {
        let tls_cluster = dialer.tls_enabled().then_some(args.cluster_name.as_str());
        for peer in discovery::static_peers(&args.peers, tls_cluster)? {
            pool.apply(PeerChange::Upsert(peer));
        }
        discovery_up.send_replace(true);
    }

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    tokio::spawn(report_health(
        health_reporter,
        pool.clone(),
        discovery_state,
        shutdown.clone(),
    ));

    let (fanout_settings, settings) = watch::channel(Arc::new(FanoutSettings {
        sort_buffer_len: args.sort_buffer_len_max,
        drain_timeout: args.sort_buffer_drain_timeout,
        relay_node: args.node_name.clone(),
        peer_refresh: Duration::from_secs(1),
    }));
    let targets = crate::live::Targets {
        fanout: fanout_settings,
        retry_timeout,
        dialer: dialer.clone(),
    };
    let client = crate::live::runtime::client(&args).await?;
    crate::live::runtime::start(&args, targets, metrics.config_reloads(), client, &shutdown)?;
    let observer = RelayObserver {
        pool: pool.clone(),
        settings,
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
        started: Instant::now(),
    };
    let router = Server::builder()
        .layer(metrics.grpc_layer())
        .add_service(relay_router(observer))
        .add_service(health_service.clone())
        .add_service(reflection::v1(&[OBSERVER_SERVICE])?)
        .add_service(reflection::v1alpha(&[OBSERVER_SERVICE])?);

    let listener = bind("the API", &args.listen_address).await?;
    let api_address = listener.local_addr().map_err(|source| RelayError::Bind {
        what: "the API",
        address: args.listen_address.clone(),
        source,
    })?;
    let stopping = shutdown.clone();
    let server = match server_tls(&args)? {
        Some(tls) => tokio::spawn(async move {
            let incoming = listen::tls_incoming(listener, tls, stopping.clone());
            if let Err(err) = router
                .serve_with_incoming_shutdown(incoming, stopping.cancelled_owned())
                .await
            {
                tracing::error!(%err, "API server failed");
            }
        }),
        None => tokio::spawn(async move {
            let incoming = nodelay_incoming(listener);
            if let Err(err) = router
                .serve_with_incoming_shutdown(incoming, stopping.cancelled_owned())
                .await
            {
                tracing::error!(%err, "API server failed");
            }
        }),
    };
    tracing::info!(%api_address, "relay API listening");

    if !args.health_listen_address.is_empty() {
        let listener = bind("health", &args.health_listen_address).await?;
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            let serve = Server::builder()
                .add_service(health_service)
                .serve_with_incoming_shutdown(nodelay_incoming(listener), stopping.cancelled_owned());
            if let Err(err) = serve.await {
                tracing::error!(%err, "health server failed");
            }
        });
    }

    let metrics_address = if args.metrics_listen_address.is_empty() {
        None
    } else {
        let options = MetricsServerOptions {
            address: args.metrics_listen_address.clone(),
            open_metrics: true,
            tls: MetricsTlsFiles::from_flags(
                args.metrics_server_tls_cert_file.clone(),
                args.metrics_server_tls_key_file.clone(),
                args.metrics_server_tls_client_ca_files.clone(),
            )?,
            tls_reload_interval: Duration::from_secs(5),
        };
        let server = MetricsServer::bind(&options).await?;
        let address = server.local_addr();
        let (metrics, pool) = (metrics.clone(), pool.clone());
        let scrape = move |format| {
            metrics.observe_pool(&pool);
            metrics.encode_as(format)
        };
        tokio::spawn(server.serve(Arc::new(scrape), shutdown.clone()));
        address
    };

    Ok(RunningRelay {
        api_address,
        metrics_address,
        pool,
        shutdown,
        server,
    })
}

/// SERVING while the peer source works and at least one peer is connected, as in hubble-relay.
async fn report_health(reporter: HealthReporter, pool: Pool, mut discovery: watch::Receiver<bool>, shutdown: Shutdown) {
    let mut changes = pool.subscribe();
    let mut discovery_open = true;
    loop {
        let connected = pool
            .snapshot()
            .iter()
            .any(|p| matches!(p.state, PeerState::Connected { .. }));
        let status = if *discovery.borrow() && connected {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        reporter.set_service_status(HEALTH_SERVICE, status).await;
        // A closed channel answers `changed()` at once, forever: with static peers
        // discovery's sender is gone from the start, and waiting on it would spin.
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            changed = discovery.changed(), if discovery_open => discovery_open = changed.is_ok(),
            () = shutdown.cancelled() => return,
        }
    }
}
