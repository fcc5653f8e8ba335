//! Starts the sources and the applier.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use sightline_common::generation_lease::GenerationLease;
use sightline_common::shutdown::Shutdown;
use tokio::sync::mpsc;

use super::settings::{Tunables, flag_values};
use super::{Applier, LiveError, Targets, configmap, file_source};
use crate::config::Args;
use crate::metrics::Reloads;

/// Deliveries queued ahead of the applier; more would only be older versions.
const QUEUE: usize = 8;

/// The cluster client `--config-map` needs (in-cluster, or the kubeconfig the
/// environment names); `None` without the flag, so a relay without it never
/// looks for API credentials.
pub async fn client(args: &Args) -> Result<Option<Client>, LiveError> {
    if args.live.config_map.is_empty() {
        return Ok(None);
    }
    let config = kube::Config::infer()
        .await
        .map_err(|error| LiveError::Client(error.to_string()))?;
    let client = Client::try_from(config).map_err(|error| LiveError::Client(error.to_string()))?;
    Ok(Some(client))
}

/// The component label's value on the relays' generation Leases, which the operator lists.
pub const LEASE_COMPONENT: &str = "relay";

/// Follows `--config` (when given) and, with `client`, `--config-map`, until
/// `shutdown`; with `--config-map` and `--pod-name` it also reports the generation
/// in force on the pod's Lease. Without either source nothing starts.
pub fn start(
    args: &Args,
    targets: Targets,
    reloads: Reloads,
    client: Option<Client>,
    shutdown: &Shutdown,
) -> Result<(), LiveError> {
    let watched = client.filter(|_| !args.live.config_map.is_empty());
    if args.config.is_none() && watched.is_none() {
        return Ok(());
    }
    // The text the flags came from. Unreadable now means it changed under us,
    // which the first poll picks up.
    let startup = args.config.as_ref().and_then(|path| file_source::read(path).ok());
    let startup_values = flag_values(
        &args.argv,
        startup
            .as_ref()
            .map(|snapshot| (snapshot.origin.as_path(), snapshot.config.as_str())),
    )?;
    let mut applier = Applier::new(args.argv.clone(), startup_values, Tunables::of(args), targets, reloads);
    if let Some(snapshot) = &startup {
        applier.started_from(snapshot);
    }
    let (send, mut receive) = mpsc::channel(QUEUE);
    if let Some(path) = &args.config {
        let poll = file_source::poll(path.clone(), startup, send.clone());
        let token = shutdown.clone();
        tokio::spawn(async move { token.run_until_cancelled(poll).await });
    }
    if let Some(client) = watched {
        let namespace = args.live.namespace();
        let name = args.live.config_map.clone();
        tracing::info!(config_map = name, namespace, "following the configuration ConfigMap");
        let pod = args.live.pod_name.clone();
        if pod.is_empty() {
            tracing::warn!(
                "no --pod-name (POD_NAME): the generation Lease is not written and the operator does not count this relay"
            );
        } else {
            let reporter = GenerationLease {
                component: LEASE_COMPONENT,
                holder: pod,
                renew_interval: args.live.config_lease_renew_interval,
            };
            let report = reporter.report(
                Api::<Lease>::namespaced(client.clone(), &namespace),
                applier.generation(),
            );
            let token = shutdown.clone();
            tokio::spawn(async move { token.run_until_cancelled(report).await });
        }
        let api = Api::<ConfigMap>::namespaced(client, &namespace);
        let watch = configmap::watch(api, namespace, name, send);
        let token = shutdown.clone();
        tokio::spawn(async move { token.run_until_cancelled(watch).await });
    }
    tokio::spawn(async move {
        while let Some(delivered) = receive.recv().await {
            applier.receive(delivered);
        }
    });
    Ok(())
}
