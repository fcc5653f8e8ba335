//! The Prometheus `/metrics` endpoint of the agent and the relay: plain HTTP or
//! TLS 1.3 (mutual with client CAs) with certificates that follow their files,
//! Prometheus text by default and OpenMetrics to scrapers that ask for it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::tls::{self, KeyPairFiles, Reloading, TlsError};

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
/// Why the metrics server could not start.
pub enum MetricsServerError {
    #[error("metrics server: cannot listen on {address:?}: {source}")]
    /// The listen address could not be bound.
    Bind {
        /// The address as configured.
        address: String,
        /// The bind failure.
        source: std::io::Error,
    },
    #[error("metrics server TLS: {0}")]
    /// The TLS files could not be loaded.
    Tls(#[from] TlsError),
    #[error("metrics server TLS: {missing} is not set (the certificate and the key go together)")]
    /// Only one of certificate and key was given.
    IncompleteTls {
        /// The file that is missing.
        missing: &'static str,
    },
}

/// The exposition format of one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4, what scrapers ask for by default.
    Prometheus,
    /// OpenMetrics 1.0 text, sent when asked for with `Accept` and enabled by the flag.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` header of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_TEXT,
            Format::OpenMetrics => OPENMETRICS_TEXT,
        }
    }

    /// OpenMetrics when it is enabled and the scraper's Accept header names it
    /// (Prometheus sends `application/openmetrics-text;version=1.0.0,...`).
    pub fn negotiate(accept: Option<&str>, open_metrics_enabled: bool) -> Self {
        let asks = accept.is_some_and(|accept| {
            accept
                .split(',')
                .any(|range| range.trim().starts_with("application/openmetrics-text"))
        });
        if open_metrics_enabled && asks {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// Encodes `registry` in `format`.
pub fn encode(registry: &Registry, format: Format) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail; a collector's own error leaves a partial page.
    let result = match format {
        Format::Prometheus => prometheus_client::encoding::prometheus_text::encode(&mut text, registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, registry),
    };
    if let Err(err) = result {
        tracing::warn!(%err, "a metric did not encode");
    }
    text
}

/// What a scrape returns. Implementors refresh gauges (pool state, ring
/// occupancy) before encoding.
pub trait Scrape: Send + Sync + 'static {
    /// The exposition of every metric, in the format the scraper asked for.
    fn scrape(&self, format: Format) -> String;
}

impl<F: Fn(Format) -> String + Send + Sync + 'static> Scrape for F {
    fn scrape(&self, format: Format) -> String {
        self(format)
    }
}

/// Certificate, key and (for mutual TLS) client CAs of the metrics server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsTlsFiles {
    /// Certificate chain file (PEM).
    pub cert: PathBuf,
    /// Private key file (PEM).
    pub key: PathBuf,
    /// CA bundles that client certificates must chain to; empty means no client authentication.
    pub client_cas: Vec<PathBuf>,
}

impl MetricsTlsFiles {
    /// TLS from the optional flag values: both or neither of certificate and key.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_cas: Vec<PathBuf>,
    ) -> Result<Option<Self>, MetricsServerError> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key, client_cas })),
            (Some(_), None) => Err(MetricsServerError::IncompleteTls {
                missing: "the key file",
            }),
            (None, Some(_)) => Err(MetricsServerError::IncompleteTls {
                missing: "the certificate file",
            }),
            (None, None) => Ok(None),
        }
    }
}

#[derive(Debug, Clone)]
/// How to run the metrics server, from the binary's flags.
pub struct MetricsServerOptions {
    /// `host:port`, or `:port` for every interface.
    pub address: String,
    /// Whether a scraper that asks for OpenMetrics gets it (else always Prometheus text).
    pub open_metrics: bool,
    /// TLS for the endpoint; `None` serves plain HTTP.
    pub tls: Option<MetricsTlsFiles>,
    /// How often the TLS files are checked for changes.
    pub tls_reload_interval: Duration,
}

/// A bound metrics server; [`serve`](Self::serve) runs it.
pub struct MetricsServer {
    listener: TcpListener,
    tls: Option<Arc<Reloading<ServerConfig>>>,
    open_metrics: bool,
}

async fn bind(address: &str) -> std::io::Result<TcpListener> {
    match address.strip_prefix(':') {
        Some(port) => match TcpListener::bind(format!("[::]:{port}")).await {
            Ok(listener) => Ok(listener),
            // Hosts with IPv6 disabled.
            Err(_) => TcpListener::bind(format!("0.0.0.0:{port}")).await,
        },
        None => TcpListener::bind(address).await,
    }
}

impl MetricsServer {
    /// Binds and loads the TLS material (both fatal when wrong). Needs a Tokio runtime.
    pub async fn bind(options: &MetricsServerOptions) -> Result<Self, MetricsServerError> {
        let tls = match &options.tls {
            Some(files) => {
                let identity = KeyPairFiles {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                };
                let cas = files.client_cas.clone();
                let mut watched = vec![identity.cert.clone(), identity.key.clone()];
                watched.extend(cas.iter().cloned());
                let load = move || {
                    let mut config = tls::server_config(&identity, &cas)?;
                    // Scrapers speak HTTP/1.1 here; the shared config offers only h2.
                    config.alpn_protocols = vec![b"http/1.1".to_vec()];
                    Ok(config)
                };
                Some(Reloading::watch(
                    "metrics server certificate",
                    watched,
                    options.tls_reload_interval,
                    load,
                )?)
            }
            None => None,
        };
        let listener = bind(&options.address)
            .await
            .map_err(|source| MetricsServerError::Bind {
                address: options.address.clone(),
                source,
            })?;
        Ok(Self {
            listener,
            tls,
            open_metrics: options.open_metrics,
        })
    }

    /// The address actually bound (the port chosen by the kernel for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `/metrics` until `shutdown`.
    pub async fn serve(self, scrape: Arc<dyn Scrape>, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "metrics server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (scrape, open_metrics, tls) = (scrape.clone(), self.open_metrics, self.tls.clone());
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                match tls {
                    None => serve_connection(tcp, scrape, open_metrics, shutdown).await,
                    Some(config) => {
                        let acceptor = TlsAcceptor::from(config.current());
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => serve_connection(stream, scrape, open_metrics, shutdown).await,
                            Ok(Err(err)) => tracing::debug!(%peer, %err, "metrics server: TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "metrics server: TLS handshake timed out"),
                        }
                    }
                }
            });
        }
    }
}

async fn serve_connection<S>(stream: S, scrape: Arc<dyn Scrape>, open_metrics: bool, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let scrape = scrape.clone();
        async move { Ok::<_, Infallible>(respond(&request, scrape.as_ref(), open_metrics)) }
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%err, "metrics server: connection ended with an error");
            }
        }
        _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
    }
}

fn respond(request: &Request<Incoming>, scrape: &dyn Scrape, open_metrics: bool) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "not found: metrics are at /metrics\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept, open_metrics);
    let mut response = Response::new(Full::new(Bytes::from(scrape.scrape(format))));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn openmetrics_only_when_enabled_and_asked_for() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus), true), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some(prometheus), false), Format::Prometheus);
        assert_eq!(Format::negotiate(Some("text/plain"), true), Format::Prometheus);
        assert_eq!(Format::negotiate(None, true), Format::Prometheus);
    }

    #[test]
    fn tls_needs_both_certificate_and_key() {
        let cert = Some(PathBuf::from("/c.pem"));
        assert!(MetricsTlsFiles::from_flags(cert.clone(), None, vec![]).is_err());
        assert!(MetricsTlsFiles::from_flags(None, None, vec![]).unwrap().is_none());
        assert!(
            MetricsTlsFiles::from_flags(cert, Some("/k.pem".into()), vec![])
                .unwrap()
                .is_some()
        );
    }

    async fn get(address: SocketAddr, accept: &str) -> String {
        let request = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn serves_both_formats_from_one_registry() {
        use prometheus_client::metrics::counter::Counter;
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.register("demo_events", "Events seen", counter.clone());
        counter.inc_by(3);
        let registry = Arc::new(registry);
        let server = MetricsServer::bind(&MetricsServerOptions {
            address: "127.0.0.1:0".into(),
            open_metrics: true,
            tls: None,
            tls_reload_interval: Duration::from_secs(1),
        })
        .await
        .unwrap();
        let address = server.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let scrape = move |format| encode(&registry, format);
        tokio::spawn(server.serve(Arc::new(scrape), shutdown.clone()));

        let text = get(address, "text/plain").await;
        assert!(text.contains("content-type: text/plain; version=0.0.4"), "{text}");
        assert!(text.contains("# TYPE demo_events_total counter"), "{text}");
        assert!(text.contains("\ndemo_events_total 3\n"), "{text}");
        assert!(!text.contains("# EOF"), "{text}");

        let open = get(address, "application/openmetrics-text;version=1.0.0").await;
        assert!(open.contains("content-type: application/openmetrics-text"), "{open}");
        assert!(open.contains("# TYPE demo_events counter"), "{open}");
        assert!(open.contains("# EOF"), "{open}");
        shutdown.cancel();
    }
}
