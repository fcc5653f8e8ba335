//! Starts the agent's metrics: the registry every `/metrics` scrape encodes (flow
//! metrics, lost events, observer and process metrics) and its HTTP(S) server.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use sightline_common::grpc_metrics::GrpcServerMetrics;
use sightline_common::metrics_server::{
    self, MetricsServer, MetricsServerError, MetricsServerOptions, MetricsTlsFiles,
};
use tokio_util::sync::CancellationToken;

use super::{FlowFamilies, FlowMetrics, MetricsArgs, MetricsError, MetricsSink};
use crate::event::EventSink;
use crate::observer::ring::Ring;
use crate::observer::sink::ObserverStats;

#[derive(Debug, thiserror::Error)]
pub enum MetricsStartError {
    #[error("--metrics: {0}")]
    Config(#[from] MetricsError),
    #[error(transparent)]
    Server(#[from] MetricsServerError),
    #[error("--dynamic-metrics-config-path {0}")]
    Dynamic(#[from] super::dynamic::DynamicConfigError),
}

/// `hubble_lost_events_total{source}`, counted where losses are reported.
pub(crate) type LostEvents = Family<Vec<(&'static str, String)>, Counter>;

/// Observer state read at scrape time.
#[derive(Debug)]
struct ObserverCollector {
    ring: Ring,
    stats: Arc<ObserverStats>,
}

impl Collector for ObserverCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let seen = ConstCounter::new(self.stats.seen_flows.load(Ordering::Relaxed));
        seen.encode(encoder.encode_descriptor(
            "sightline_observer_flows_seen",
            "Flows written to the observer ring",
            None,
            seen.metric_type(),
        )?)?;
        let held = ConstGauge::new(self.ring.len() as i64);
        held.encode(encoder.encode_descriptor(
            "sightline_observer_ring_events",
            "Events held in the observer ring",
            None,
            held.metric_type(),
        )?)?;
        let capacity = ConstGauge::new(self.ring.capacity() as i64);
        capacity.encode(encoder.encode_descriptor(
            "sightline_observer_ring_capacity",
            "Events the observer ring holds when full (--event-buffer-capacity)",
            None,
            capacity.metric_type(),
        )?)?;
        let readers = ConstGauge::new(self.ring.waiting_readers() as i64);
        readers.encode(encoder.encode_descriptor(
            "sightline_observer_followers",
            "GetFlows clients waiting for new events",
            None,
            readers.metric_type(),
        )?)?;
        Ok(())
    }
}

/// The configured flow metrics, ready to go in front of the ring.
pub struct MetricsStage {
    flow_metrics: FlowMetrics,
    families: FlowFamilies,
    lost: LostEvents,
    reloads: std::sync::mpsc::Receiver<FlowMetrics>,
    reloader: MetricsReloader,
    live_config_reloads: super::dynamic::Reloads,
    departures: std::sync::mpsc::Sender<crate::enrich::index::PodDeparture>,
    gone: std::sync::mpsc::Receiver<super::sink::GonePod>,
    /// Where `/metrics` is served, when it is.
    pub address: Option<std::net::SocketAddr>,
    shutdown: CancellationToken,
    grpc: GrpcServerMetrics,
    l7: Arc<crate::l7::L7Stats>,
    dynamic_exporter: crate::export::dynamic_metrics::DynamicExporterMetrics,
}

impl MetricsStage {
    /// Checks the configuration (errors stop the agent), builds the registry and
    /// starts the server when `--metrics-server` is set.
    pub async fn start(args: &MetricsArgs, ring: Ring, stats: Arc<ObserverStats>) -> Result<Self, MetricsStartError> {
        let config_reloads = super::dynamic::Reloads::default();
        let live_config_reloads = super::dynamic::Reloads::default();
        let (send, reloads) = std::sync::mpsc::channel();
        let flow_metrics = match &args.dynamic_metrics_config_path {
            Some(path) => {
                if !args.metrics.is_empty() {
                    return Err(MetricsError::StaticAndDynamic.into());
                }
                let (metrics, bytes) = super::dynamic::load(path, args.metrics_max_series)?;
                super::dynamic::watch(
                    path.clone(),
                    args.metrics_max_series,
                    bytes,
                    config_reloads.clone(),
                    send.clone(),
                );
                metrics
            }
            None => args.static_metrics()?,
        };
        let reloader = MetricsReloader {
            send,
            max_series: args.metrics_max_series,
            static_metrics: !args.metrics.is_empty(),
        };
        let families = FlowFamilies::default();
        let lost = LostEvents::default();
        let mut registry = Registry::default();
        registry.register(
            "sightline_metrics_config_reloads",
            "Changes of --dynamic-metrics-config-path applied (success) or refused (error)",
            config_reloads,
        );
        registry.register(
            "sightline_agent_config_reloads",
            "Configuration changes (--config file or ConfigMap) applied (success) or refused (error)",
            live_config_reloads.clone(),
        );
        registry.register_collector(Box::new(families.clone()));
        registry.register("hubble_lost_events", "Number of lost events", lost.clone());
        registry.register_collector(Box::new(ObserverCollector { ring, stats }));
        registry.register_collector(Box::new(super::process::ProcessCollector));
        let l7 = Arc::new(crate::l7::L7Stats::default());
        registry.register_collector(Box::new(super::l7::L7Collector::new(Arc::clone(&l7))));
        let dynamic_exporter = crate::export::dynamic_metrics::DynamicExporterMetrics::default();
        registry.register_collector(Box::new(dynamic_exporter.clone()));
        let grpc = GrpcServerMetrics::or_disabled(&[
            sightline_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ]);
        grpc.register(&mut registry);
        let (departures, receive_departures) = std::sync::mpsc::channel();
        let (send_gone, gone) = std::sync::mpsc::channel();
        super::expiry::forward_after(receive_departures, super::expiry::EXPIRY_DELAY, send_gone);
        let shutdown = CancellationToken::new();
        let address = if args.metrics_server.trim().is_empty() {
            None
        } else {
            let options = MetricsServerOptions {
                address: args.metrics_server.clone(),
                open_metrics: args.enable_open_metrics,
                tls: MetricsTlsFiles::from_flags(
                    args.metrics_server_tls_cert_file.clone(),
                    args.metrics_server_tls_key_file.clone(),
                    args.metrics_server_tls_client_ca_files.clone(),
                )?,
                tls_reload_interval: Duration::from_secs(2),
            };
            let server = MetricsServer::bind(&options).await?;
            let address = server.local_addr();
            let registry = Arc::new(registry);
            let scrape = move |format| metrics_server::encode(&registry, format);
            tokio::spawn(server.serve(Arc::new(scrape), shutdown.clone()));
            tracing::info!(address = ?address, "metrics server listening");
            address
        };
        Ok(Self {
            flow_metrics,
            families,
            lost,
            reloads,
            reloader,
            live_config_reloads,
            departures,
            gone,
            address,
            shutdown,
            grpc,
            l7,
            dynamic_exporter,
        })
    }

    /// The `grpc_server_*` counters, for the layer around the API servers.
    pub fn grpc_metrics(&self) -> GrpcServerMetrics {
        self.grpc.clone()
    }

    /// The pipeline stage that counts flows and losses, then hands events to `inner`.
    pub fn wrap<S: EventSink>(self, inner: S) -> MetricsSink<S> {
        let sink = MetricsSink::new(self.flow_metrics, self.families, inner)
            .with_lost_events(self.lost)
            .with_expiry(self.gone);
        sink.with_reloads(self.reloads)
    }

    /// Where a new dynamic metrics configuration goes, from any source.
    pub fn reloader(&self) -> MetricsReloader {
        self.reloader.clone()
    }

    /// `sightline_agent_config_reloads_total{result}`, counted by the live configuration.
    pub fn live_config_reloads(&self) -> super::dynamic::Reloads {
        self.live_config_reloads.clone()
    }

    /// `hubble_lost_events_total{source}`, for other stages that lose events.
    pub fn lost_events(&self) -> LostEvents {
        self.lost.clone()
    }

    /// Where the enrichment index reports pods that left.
    pub fn departures(&self) -> std::sync::mpsc::Sender<crate::enrich::index::PodDeparture> {
        self.departures.clone()
    }

    /// Where the L7 parsers and the datapath count what `sightline_l7_*` shows.
    pub fn l7_stats(&self) -> Arc<crate::l7::L7Stats> {
        Arc::clone(&self.l7)
    }

    /// `hubble_dynamic_exporter_*`, recorded by the flow-log exporters of `flowlogs.yaml`.
    pub fn dynamic_exporter_metrics(&self) -> crate::export::dynamic_metrics::DynamicExporterMetrics {
        self.dynamic_exporter.clone()
    }

    /// Stops the server (the pipeline stage keeps counting).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Hands a dynamic metrics configuration (Hubble's `metrics:` YAML) to the pipeline,
/// which swaps it in at its next event or idle tick, keeping the series of handlers
/// that did not change.
#[derive(Debug, Clone)]
pub struct MetricsReloader {
    send: std::sync::mpsc::Sender<FlowMetrics>,
    max_series: usize,
    /// `--metrics` was given: the command line's list stays in force.
    static_metrics: bool,
}

impl MetricsReloader {
    /// Checks `text` (named `origin` in errors) without applying it.
    pub fn parse(
        &self,
        origin: &std::path::Path,
        text: &str,
    ) -> Result<FlowMetrics, super::dynamic::DynamicConfigError> {
        super::dynamic::parse(origin, text, self.max_series)
    }

    /// Whether `--metrics` fixed the list on the command line, which wins over any file.
    pub fn fixed_by_flag(&self) -> bool {
        self.static_metrics
    }

    pub fn apply(&self, metrics: FlowMetrics) {
        // The pipeline is gone only while the agent stops.
        let _ = self.send.send(metrics);
    }
}
