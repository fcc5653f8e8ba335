//! The reconciler's metrics, in one struct registered once.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
/// Labels of the reconcile failure counter.
pub struct ErrorLabels {
    /// [`Error::metric_label`](super::error::Error::metric_label) of the failure.
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
/// Labels of the certificate expiry gauge.
pub struct SecretLabels {
    /// The Secret holding the certificate.
    pub secret: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
/// Labels of the rotation counter.
pub struct RotationLabels {
    /// `leaf` or `ca`.
    pub kind: String,
}

/// Every metric the operator exports.
#[derive(Debug)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Reconciles run.
    pub reconciles: Counter,
    /// Reconciles failed, by error kind.
    pub failures: Family<ErrorLabels, Counter>,
    /// How long reconciles take, in seconds.
    pub duration: Histogram,
    /// Each certificate's expiry, Unix seconds.
    pub not_after: Family<SecretLabels, Gauge>,
    /// Certificates and CAs replaced.
    pub rotations: Family<RotationLabels, Counter>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let not_after = Family::<SecretLabels, Gauge>::default();
        let rotations = Family::<RotationLabels, Counter>::default();
        let leader = Gauge::default();
        registry.register(
            "sightline_operator_reconcile_runs",
            "Reconciles started",
            reconciles.clone(),
        );
        registry.register(
            "sightline_operator_reconcile_failures",
            "Reconciles that failed, by error",
            failures.clone(),
        );
        registry.register(
            "sightline_operator_reconcile_duration_seconds",
            "How long a reconcile took",
            duration.clone(),
        );
        registry.register(
            "sightline_tls_certificate_not_after_seconds",
            "Expiry of each certificate Secret, as a Unix time",
            not_after.clone(),
        );
        registry.register(
            "sightline_tls_rotations",
            "Certificates re-issued (leaf) and CA rotations completed (ca)",
            rotations.clone(),
        );
        registry.register(
            "sightline_operator_leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
            not_after,
            rotations,
            leader,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
