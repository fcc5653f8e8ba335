//! `sightline-operator`: reconciles the `SightlineConfig` custom resource into agent
//! and relay configuration and their TLS material, while it holds the leader Lease.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use sightline_common::duration::parse_duration;
use sightline_common::logging::LogArgs;
use sightline_common::shutdown::{Shutdown, cancel_on_signal};
use sightline_operator::controller::leader::{self, Election};
use sightline_operator::controller::metrics::Metrics;
use sightline_operator::controller::{self, Settings};
use sightline_operator::http::{self, Health};
use tokio::sync::watch;
use tracing::info;

/// The in-cluster file naming the pod's namespace.
const NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|err| err.to_string())
}

/// Sightline operator: configuration and TLS reconciled from SightlineConfig.
#[derive(Debug, Parser)]
#[command(name = "sightline-operator", version)]
struct Args {
    /// Namespace of the ConfigMaps, Secrets, Events and Leases [default: $POD_NAMESPACE,
    /// else the pod's service-account namespace].
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: Option<String>,
    /// Kubeconfig file, for running outside the cluster [default: in-cluster, else $KUBECONFIG or ~/.kube/config].
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "SIGHTLINE_OPERATOR_METRICS_ADDRESS", default_value = "0.0.0.0:9967")]
    metrics_address: SocketAddr,
    /// The agents' DaemonSet (rolled when spec.agent.restartPolicy is Rolling).
    #[arg(long, env = "SIGHTLINE_OPERATOR_AGENT_DAEMONSET", default_value = "sightline-agent")]
    agent_daemonset: String,
    /// Label selector of the relay's pods in --namespace, whose generation Leases
    /// `ConfigApplied` counts (a Lease of a pod that is gone does not count).
    #[arg(
        long,
        env = "SIGHTLINE_OPERATOR_RELAY_POD_SELECTOR",
        default_value = "app.kubernetes.io/name=sightline,app.kubernetes.io/component=relay"
    )]
    relay_pod_selector: String,
    /// How long a changed Secret takes to reach the pods mounting it; each CA rotation step waits this long.
    #[arg(long, env = "SIGHTLINE_OPERATOR_SECRET_PROPAGATION", default_value = "2m", value_parser = duration)]
    secret_propagation: Duration,
    /// Longest time between two reconciles when nothing changes.
    #[arg(long, env = "SIGHTLINE_OPERATOR_RESYNC", default_value = "5m", value_parser = duration)]
    resync: Duration,
    /// The leader Lease.
    #[arg(long, env = "SIGHTLINE_OPERATOR_LEASE_NAME", default_value = "sightline-operator")]
    lease_name: String,
    /// How long a leader's Lease holds without renewal.
    #[arg(long, env = "SIGHTLINE_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    lease_duration: Duration,
    /// This replica's name in the Lease [default: $POD_NAME, else the hostname].
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    #[command(flatten)]
    log: LogArgs,
}

fn namespace(args: &Args) -> anyhow::Result<String> {
    if let Some(namespace) = &args.namespace {
        return Ok(namespace.clone());
    }
    std::fs::read_to_string(NAMESPACE_FILE)
        .map(|text| text.trim().to_owned())
        .with_context(|| format!("--namespace not given and {NAMESPACE_FILE} unreadable"))
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => Config::infer()
            .await
            .context("no in-cluster configuration and no kubeconfig")?,
    };
    Client::try_from(config).context("building the Kubernetes client")
}

fn identity(args: &Args) -> String {
    args.identity.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| format!("sightline-operator-{}", std::process::id()))
    })
}

/// Keeps `/readyz` in step with whether the API server answers.
async fn probe_api_server(client: Client, health: Arc<Health>, shutdown: Shutdown) {
    loop {
        let reachable = client.apiserver_version().await.is_ok();
        health.api_reachable.store(reachable, Ordering::Relaxed);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(10)) => {}
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let namespace = namespace(&args)?;
    let client = client(args.kubeconfig.as_ref()).await?;
    let identity = identity(&args);
    let shutdown = Shutdown::new();
    cancel_on_signal(shutdown.clone()).context("installing signal handlers")?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let server = tokio::spawn(http::serve(
        args.metrics_address,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
    ));

    tokio::spawn(probe_api_server(client.clone(), health.clone(), shutdown.clone()));
    let (leading_tx, mut leading) = watch::channel(false);
    let election = Election {
        lease_name: args.lease_name.clone(),
        identity: identity.clone(),
        lease_duration: args.lease_duration,
        renew_interval: args.lease_duration / 3,
    };
    let elector = tokio::spawn(leader::run(
        client.clone(),
        namespace.clone(),
        election,
        leading_tx,
        shutdown.clone(),
    ));
    let settings = Settings {
        namespace,
        agent_daemonset: args.agent_daemonset.clone(),
        relay_pod_selector: args.relay_pod_selector.clone(),
        propagation: args.secret_propagation,
        resync: args.resync,
    };
    let ctx = controller::context(client.clone(), settings, metrics.clone(), &identity);
    info!(%identity, "waiting for the leader Lease");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = leading.wait_for(|lead| *lead) => if changed.is_err() { break },
        }
        metrics.leader.set(1);
        let mut lost = leading.clone();
        let stopping = shutdown.clone();
        controller::run(ctx.clone(), async move {
            tokio::select! {
                () = stopping.cancelled() => {}
                _ = lost.wait_for(|lead| !*lead) => {}
            }
        })
        .await;
        metrics.leader.set(0);
        if shutdown.is_cancelled() {
            break;
        }
        info!("no longer leader; waiting for the Lease again");
    }
    let _ = elector.await;
    server.await.context("metrics server task")?.context("metrics server")?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::try_parse().unwrap_or_else(|error| sightline_common::edge::exit_usage(&error));
    if let Err(error) = args.log.init() {
        sightline_common::edge::exit_usage(&error);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return sightline_common::edge::report(Err(error.into())),
    };
    sightline_common::edge::report(runtime.block_on(run(args)))
}
