//! Where Kubernetes objects come from: an API server (in-cluster config or
//! `--kubeconfig`) watched with `kube`'s runtime watchers, or `--manifests DIR`.

pub(crate) mod convert;
pub mod local_addresses;
pub mod manifests;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::enrich::{Enricher, Index, IndexConfig, NodePeers, events};
use crate::event::EventSink;

/// How often `--manifests` is checked for changed files.
pub const MANIFEST_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Where the agent gets Kubernetes metadata: an API server, a manifests directory, or none.
#[derive(Debug, Clone, clap::Args)]
pub struct K8sArgs {
    /// Kubeconfig file for the API server. Default: the in-cluster service account,
    /// else $KUBECONFIG or ~/.kube/config.
    #[arg(long, env = "SIGHTLINE_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Standalone mode: read Pods, Services, Nodes, Namespaces, workloads… from the
    /// Kubernetes YAML files in DIR instead of an API server; re-read when they change.
    #[arg(long, env = "SIGHTLINE_MANIFESTS", value_name = "DIR", conflicts_with = "kubeconfig")]
    pub manifests: Option<PathBuf>,
    /// No Kubernetes metadata: flows leave the agent as the datapath decoded them.
    #[arg(long, env = "SIGHTLINE_K8S_DISABLED", conflicts_with_all = ["kubeconfig", "manifests"])]
    pub k8s_disabled: bool,
    /// The cluster's DNS domain. Names inside it (`*.svc.cluster.local`) are not put
    /// on flows as `source_names`/`destination_names`: Hubble users see those names
    /// for destinations outside the cluster, and Hubble UI hides every flow that
    /// carries a cluster-domain name (see docs/enrichment.md).
    #[arg(long, env = "SIGHTLINE_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
}

/// Why the metadata source asked for could not start. A cluster that is merely
/// absent (no `--kubeconfig`, no in-cluster account) is no error: the agent runs
/// without metadata.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// `--kubeconfig` could not be read or names no usable context.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The `--kubeconfig` path.
        path: PathBuf,
        /// kube's reason.
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built from the configuration (TLS material, URL).
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
    /// The `--manifests` directory could not be listed at start.
    #[error(transparent)]
    Manifests(#[from] manifests::ManifestError),
}

/// The running metadata source. Dropping it stops the watchers.
pub struct K8s {
    /// What the enricher looks addresses up in, kept current by the watchers.
    pub index: Arc<Index>,
    /// The cluster's Nodes as `peer.Peer` announces them, updated on every change.
    pub peers: NodePeers,
    /// The API server's client; `None` with `--manifests`.
    pub client: Option<kube::Client>,
    cluster_domain: String,
    tasks: Vec<JoinHandle<()>>,
}

impl K8s {
    /// The pipeline stage to put between the datapath and the observer ring.
    pub fn enricher<S: EventSink>(&self, next: S) -> Enricher<S> {
        Enricher::new(self.index.clone(), next).with_cluster_domain(&self.cluster_domain)
    }
}

impl std::fmt::Debug for K8s {
    // kube's Client has no Debug; the rest says what matters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8s")
            .field("index", &self.index)
            .field("api_server", &self.client.is_some())
            .field("cluster_domain", &self.cluster_domain)
            .finish_non_exhaustive()
    }
}

impl Drop for K8s {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the configured source. `Ok(None)`: run without metadata (disabled, or no
/// cluster found and none asked for).
pub async fn start(args: &K8sArgs, config: IndexConfig) -> Result<Option<K8s>, K8sError> {
    if args.k8s_disabled {
        return Ok(None);
    }
    let index = Arc::new(Index::new(config));
    index.agent_events().push(events::agent_started());
    let mut client = None;
    let mut tasks = if let Some(dir) = &args.manifests {
        let mut manifests = manifests::ManifestDir::new(dir);
        manifests.sync(&index)?;
        vec![tokio::spawn(manifests::poll(
            manifests,
            index.clone(),
            MANIFEST_POLL_INTERVAL,
        ))]
    } else {
        let config = match &args.kubeconfig {
            Some(path) => {
                let error = |source| K8sError::Kubeconfig {
                    path: path.clone(),
                    source,
                };
                let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(error)?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                    .await
                    .map_err(error)?
            }
            None => match kube::Config::infer().await {
                Ok(config) => config,
                Err(error) => {
                    tracing::warn!(%error, "no Kubernetes configuration found; flows get no Kubernetes metadata (use --manifests or --kubeconfig)");
                    return Ok(None);
                }
            },
        };
        let api = kube::Client::try_from(config)?;
        client = Some(api.clone());
        watch::spawn_all(api, index.clone())
    };
    tasks.push(tokio::spawn(local_addresses::follow_logged(index.clone())));
    let peers = index.peers();
    Ok(Some(K8s {
        index,
        peers,
        client,
        cluster_domain: args.cluster_domain.clone(),
        tasks,
    }))
}
