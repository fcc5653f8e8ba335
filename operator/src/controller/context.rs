//! What every reconcile shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Recorder;
use sightline_common::backoff::Backoff;

use super::metrics::Metrics;

/// Settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where ConfigMaps, Secrets, Events and Leases live.
    pub namespace: String,
    /// The agents' DaemonSet, rolled when `restartPolicy: Rolling` asks for it.
    pub agent_daemonset: String,
    /// Label selector of the relay's pods: a relay Lease counts only while its pod exists.
    pub relay_pod_selector: String,
    /// How long a changed Secret takes to reach the pods that mount it.
    pub propagation: Duration,
    /// Longest wait before looking again when nothing changes.
    pub resync: Duration,
}

/// Shared state of the reconciler.
pub struct Context {
    /// The Kubernetes client every call goes through.
    pub client: Client,
    /// Publishes Events on the SightlineConfig.
    pub recorder: Recorder,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// The flags that shape what is rendered.
    pub settings: Settings,
    /// Per-object backoff after errors, reset by a success.
    pub backoff: Mutex<HashMap<String, Backoff>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
