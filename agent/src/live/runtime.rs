//! Starts the sources and the applier.

use std::ffi::OsString;
use std::path::PathBuf;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Applier, LiveArgs, LiveConfigError, file_source};
use crate::cli::Args;
use crate::datapath::LiveDatapath;
use crate::metrics::MetricsStage;

/// Sources queued ahead of the applier; more would only be older versions.
const QUEUE: usize = 8;

/// The running live configuration. Dropping it stops the sources.
pub struct LiveConfig {
    /// The datapath's live settings.
    pub datapath: watch::Receiver<LiveDatapath>,
    /// The generation in force, also written to the Lease.
    pub generation: watch::Receiver<Option<i64>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for LiveConfig {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts following `--config` (when given) and, with a cluster client and
/// `--config-map`, the ConfigMap and the node's Lease.
pub fn start(
    argv: Vec<OsString>,
    args: &Args,
    node: &str,
    metrics: &MetricsStage,
    flowlogs: Option<crate::export::DynamicExporters>,
    client: Option<Client>,
) -> Result<LiveConfig, LiveConfigError> {
    let startup = match &args.config {
        Some(path) => Some((path.clone(), file_source::read(path, node)?)),
        None => None,
    };
    let startup_text = startup
        .as_ref()
        .and_then(|(_, snapshot)| Some((snapshot.origin.clone(), snapshot.config.clone()?)));
    let mut applier =
        Applier::new(argv, args, startup_text)?.with_metrics(metrics.reloader(), metrics.live_config_reloads());
    if let Some(flowlogs) = flowlogs {
        applier = applier.with_flowlogs(flowlogs, args.export.flowlogs_config_path.is_some());
    }
    if let Some((_, snapshot)) = &startup {
        // Only the generation is new here: the flags already came from this text.
        applier.apply_logged(snapshot);
    }
    let (send, mut receive) = mpsc::channel(QUEUE);
    let mut tasks = Vec::new();
    if let Some((path, snapshot)) = startup {
        tasks.push(tokio::spawn(file_source::poll(
            path,
            node.to_owned(),
            Some(snapshot),
            send.clone(),
        )));
    }
    let live: &LiveArgs = &args.live;
    match client {
        Some(client) if !live.config_map.is_empty() => {
            let namespace = live.namespace();
            tracing::info!(
                config_map = live.config_map,
                namespace,
                "following the configuration ConfigMap"
            );
            tasks.push(tokio::spawn(super::configmap::watch(
                Api::<ConfigMap>::namespaced(client.clone(), &namespace),
                namespace.clone(),
                live.config_map.clone(),
                node.to_owned(),
                send,
            )));
            tasks.push(tokio::spawn(super::lease::report(
                Api::<Lease>::namespaced(client, &namespace),
                node.to_owned(),
                applier.generation(),
                live.config_lease_renew_interval,
            )));
        }
        None if !live.config_map.is_empty() => {
            tracing::warn!("--config-map is set but there is no Kubernetes API server; only --config is followed");
        }
        _ => drop(send),
    }
    let datapath = applier.datapath();
    let generation = applier.generation();
    tasks.push(tokio::spawn(async move {
        while let Some(snapshot) = receive.recv().await {
            applier.apply_logged(&snapshot);
        }
    }));
    Ok(LiveConfig {
        datapath,
        generation,
        tasks,
    })
}

/// The `--config` file the agent starts with: the node's profile when the
/// profiles file next to it names the node.
pub fn startup_config(path: &std::path::Path, node: &str) -> Result<PathBuf, LiveConfigError> {
    super::profile::resolve_file(path, node)
}
