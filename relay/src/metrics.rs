//! The relay's own Prometheus metrics, served on `--metrics-listen-address`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use sightline_common::grpc_metrics::{GrpcMetricsLayer, GrpcServerMetrics};
use sightline_common::metrics_server::Format;

use crate::pool::{PeerState, Pool};
use crate::sort_buffer::Release;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// `sightline_relay_config_reloads_total{result}`: versions of the live
/// configuration applied (`success`) or refused (`error`).
#[derive(Clone, Debug, Default)]
pub struct Reloads(Family<ResultLabel, Counter>);

impl Reloads {
    /// Counts a configuration version applied.
    pub fn success(&self) {
        self.0.get_or_create(&ResultLabel { result: "success" }).inc();
    }

    /// Counts a configuration version refused.
    pub fn error(&self) {
        self.0.get_or_create(&ResultLabel { result: "error" }).inc();
    }
}

#[derive(Clone)]
/// The relay's Prometheus metrics, named as hubble-relay names them.
pub struct RelayMetrics {
    registry: Arc<Registry>,
    peers: Family<StatusLabel, Gauge>,
    forwarded: Counter,
    /// The eviction family's three series, looked up once: `released` runs per flow.
    evicted: [Counter; 3],
    grpc: GrpcServerMetrics,
    config_reloads: Reloads,
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RelayMetrics {
    /// An empty registry with every family registered.
    pub fn new() -> Self {
        let mut root = Registry::default();
        // The gRPC server metrics keep go-grpc-prometheus' names, without our prefix.
        let grpc = GrpcServerMetrics::or_disabled(&[
            sightline_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ]);
        grpc.register(&mut root);
        let config_reloads = Reloads::default();
        // Both series exist from the start, so an alert on errors sees 0 before the first.
        for result in ["success", "error"] {
            drop(config_reloads.0.get_or_create(&ResultLabel { result }));
        }
        root.register(
            "sightline_relay_config_reloads",
            "Versions of the live configuration (--config file, --config-map) applied or refused",
            config_reloads.0.clone(),
        );
        let registry = root.sub_registry_with_prefix("hubble_relay");
        let peers = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "pool_peer_connection_status",
            "Peers by connection state (READY, CONNECTING, TRANSIENT_FAILURE)",
            peers.clone(),
        );
        let forwarded = Counter::default();
        registry.register(
            "flows_forwarded",
            "Flows sent to clients of the relay",
            forwarded.clone(),
        );
        let evictions = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "sort_buffer_evictions",
            "Responses released by the sort buffer, by reason (full, timeout, flush)",
            evictions.clone(),
        );
        let evicted =
            ["full", "timeout", "flush"].map(|reason| evictions.get_or_create(&ReasonLabel { reason }).clone());
        Self {
            registry: Arc::new(root),
            peers,
            forwarded,
            evicted,
            grpc,
            config_reloads,
        }
    }

    /// The live configuration's reload counter.
    pub fn config_reloads(&self) -> Reloads {
        self.config_reloads.clone()
    }

    /// Counts the calls of the relay's gRPC services (`grpc_server_*`).
    pub fn grpc_layer(&self) -> GrpcMetricsLayer {
        self.grpc.layer()
    }

    /// Counts one flow sent to a client.
    pub fn flow_forwarded(&self) {
        self.forwarded.inc();
    }

    /// Counts one event released from the sort buffer, by why it was released.
    pub fn released(&self, why: Release) {
        let index = match why {
            Release::Full => 0,
            Release::Timeout => 1,
            Release::Flush => 2,
        };
        self.evicted[index].inc();
    }

    /// Refreshes the peer gauge from the pool (called before each scrape). The
    /// `status` values are gRPC's connectivity states, which hubble-relay reports,
    /// so dashboards written for it work unchanged.
    pub fn observe_pool(&self, pool: &Pool) {
        let (mut ready, mut connecting, mut failing) = (0, 0, 0);
        for peer in pool.snapshot() {
            match peer.state {
                PeerState::Connected { .. } => ready += 1,
                PeerState::Connecting => connecting += 1,
                PeerState::Unavailable { .. } => failing += 1,
            }
        }
        for (status, count) in [
            ("READY", ready),
            ("CONNECTING", connecting),
            ("TRANSIENT_FAILURE", failing),
        ] {
            self.peers.get_or_create(&StatusLabel { status }).set(count);
        }
    }

    /// The exposition in Prometheus text.
    pub fn encode(&self) -> String {
        self.encode_as(Format::OpenMetrics)
    }

    /// The exposition in the format a scraper asked for.
    pub fn encode_as(&self, format: Format) -> String {
        sightline_common::metrics_server::encode(&self.registry, format)
    }
}
