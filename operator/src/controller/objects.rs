//! Reading and writing the objects the reconcile owns: Secrets with optimistic
//! concurrency (a concurrent edit is a conflict, retried), ConfigMaps with
//! server-side apply, the agents' generation Leases.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use super::agents::{Count, count_agents, count_relays};
use super::error::{Error, Result};
use crate::tls::Leaf;
use crate::tls::names::CA_SECRET;
use crate::tls::plan::{Observed, SecretContents, SecretWrite};

/// The field manager of every write.
pub const MANAGER: &str = "sightline-operator";
/// Label on the agents' per-node Leases.
pub const AGENT_LEASE_SELECTOR: &str = "sightline.dev/component=agent";
/// Label on the relays' per-pod Leases.
pub const RELAY_LEASE_SELECTOR: &str = "sightline.dev/component=relay";
pub use super::agents::AGENT_GENERATION_ANNOTATION;
/// Annotation on the agent ConfigMap: the restart-only settings the agents run.
pub const RUNNING_RESTART_ANNOTATION: &str = "sightline.dev/running-restart-settings";

/// The label on everything the operator writes; its watches select on it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=sightline-operator";

fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/managed-by".to_owned(), MANAGER.to_owned())])
}

/// The TLS Secrets as they are, with the resource versions to write against.
pub struct SecretsRead {
    /// The Secrets' contents as the TLS plan reads them.
    pub observed: Observed,
    /// Each existing Secret's resource version, so a replace fails on a concurrent change.
    pub versions: BTreeMap<String, String>,
    /// Each existing Secret's type, kept on replace (the type is immutable: a Secret
    /// someone created as Opaque stays Opaque).
    pub types: BTreeMap<String, String>,
}

fn contents(secret: &Secret) -> SecretContents {
    SecretContents {
        data: secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, value.0))
            .collect(),
        annotations: secret.metadata.annotations.clone().unwrap_or_default(),
    }
}

/// Reads every TLS Secret the operator manages in `api`'s namespace.
pub async fn read_secrets(api: &Api<Secret>) -> Result<SecretsRead> {
    let mut observed = Observed::default();
    let mut versions = BTreeMap::new();
    let mut types = BTreeMap::new();
    let mut remember = |name: &str, secret: &Secret| {
        versions.insert(
            name.to_owned(),
            secret.metadata.resource_version.clone().unwrap_or_default(),
        );
        if let Some(type_) = &secret.type_ {
            types.insert(name.to_owned(), type_.clone());
        }
    };
    if let Some(secret) = api.get_opt(CA_SECRET).await? {
        remember(CA_SECRET, &secret);
        observed.ca = Some(contents(&secret));
    }
    for leaf in Leaf::ALL {
        if let Some(secret) = api.get_opt(leaf.secret_name()).await? {
            remember(leaf.secret_name(), &secret);
            observed.leaves.insert(leaf, contents(&secret));
        }
    }
    Ok(SecretsRead {
        observed,
        versions,
        types,
    })
}

fn conflict(what: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |error| match error {
        kube::Error::Api(status) if status.code == 409 => Error::Conflict { what: what.to_owned() },
        other => Error::Kube(other),
    }
}

/// Writes one Secret: replaced against the version read, or created. Someone
/// else's write in between makes this fail with a conflict, never overwrite theirs.
pub async fn write_secret(
    api: &Api<Secret>,
    write: &SecretWrite,
    read: &SecretsRead,
    owner: &OwnerReference,
) -> Result<()> {
    let version = read.versions.get(write.name);
    let default_type = if write.name == CA_SECRET {
        "Opaque"
    } else {
        "kubernetes.io/tls"
    };
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(write.name.to_owned()),
            resource_version: version.cloned(),
            annotations: Some(write.contents.annotations.clone()).filter(|a| !a.is_empty()),
            labels: Some(managed_labels()),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        type_: Some(
            read.types
                .get(write.name)
                .map_or(default_type, String::as_str)
                .to_owned(),
        ),
        data: Some(
            write
                .contents
                .data
                .iter()
                .map(|(key, value)| (key.clone(), ByteString(value.clone())))
                .collect(),
        ),
        ..Secret::default()
    };
    let what = format!("Secret {}", write.name);
    match version {
        Some(_) => api
            .replace(write.name, &PostParams::default(), &secret)
            .await
            .map_err(conflict(&what))?,
        None => api
            .create(&PostParams::default(), &secret)
            .await
            .map_err(conflict(&what))?,
    };
    Ok(())
}

/// Applies a ConfigMap's data and annotations (server-side apply, our fields only).
pub async fn apply_configmap(
    api: &Api<ConfigMap>,
    name: &str,
    data: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owner: &OwnerReference,
) -> Result<()> {
    let configmap = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            annotations: Some(annotations),
            labels: Some(managed_labels()),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    };
    let mut value = serde_json::to_value(&configmap).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    value["apiVersion"] = "v1".into();
    value["kind"] = "ConfigMap".into();
    api.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(value))
        .await?;
    Ok(())
}

/// Every node's labels, by node name.
pub async fn node_labels(client: &Client) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let nodes: Api<Node> = Api::all(client.clone());
    Ok(nodes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|node| {
            let name = node.metadata.name?;
            Some((name, node.metadata.labels.unwrap_or_default()))
        })
        .collect())
}

/// How many live agents run `generation`, out of the agents on `nodes` (see
/// [`super::agents::count_agents`]).
pub async fn agents_on_generation(
    client: &Client,
    namespace: &str,
    generation: i64,
    nodes: &std::collections::BTreeSet<String>,
) -> Result<Count> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let list = leases.list(&ListParams::default().labels(AGENT_LEASE_SELECTOR)).await?;
    Ok(count_agents(&list.items, nodes, generation, Timestamp::now()))
}

/// Sets the restart checksum on the agents' pod template, which rolls them.
pub async fn roll_agents(client: &Client, namespace: &str, daemonset: &str, checksum: &str) -> Result<()> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({
        "spec": {"template": {"metadata": {"annotations": {
            crate::render::restart::RESTART_ANNOTATION: checksum
        }}}}
    });
    api.patch(daemonset, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// How many live relays run `generation`, out of the relays whose pod (selected by
/// `pod_selector`) exists (see [`super::agents::count_relays`]). A pod on its way
/// out (being deleted, or finished) is no relay any more: a rollout's old replica
/// must not hold `ConfigApplied` back.
pub async fn relays_on_generation(
    client: &Client,
    namespace: &str,
    generation: i64,
    pod_selector: &str,
) -> Result<Count> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let list = leases.list(&ListParams::default().labels(RELAY_LEASE_SELECTOR)).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let live: BTreeSet<String> = pods
        .list(&ListParams::default().labels(pod_selector))
        .await?
        .items
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .filter(|pod| {
            let phase = pod.status.as_ref().and_then(|status| status.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter_map(|pod| pod.metadata.name)
        .collect();
    Ok(count_relays(&list.items, &live, generation, Timestamp::now()))
}
