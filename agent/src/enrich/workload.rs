//! The workload a user recognises for a pod, from its owner chain.

use rustc_hash::FxHashMap;
use sightline_proto::flow::Workload;

use super::model::{OwnerInfo, OwnerRef, PodInfo};

fn owner_key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// Follows owner references up to the top (ReplicaSet → Deployment, Job → CronJob).
/// When the ReplicaSet is not (yet) known, its name minus the pod-template-hash
/// suffix names the Deployment, as Cilium guesses.
pub(super) fn workload_of(owners: &FxHashMap<String, OwnerInfo>, pod: &PodInfo) -> Option<Workload> {
    let mut current = pod.owner.clone()?;
    for _ in 0..4 {
        match owners.get(&owner_key(&current.kind, &pod.namespace, &current.name)) {
            Some(OwnerInfo {
                owner: Some(parent), ..
            }) => current = parent.clone(),
            Some(_) => break,
            None => {
                if current.kind == "ReplicaSet"
                    && let Some((_, hash)) = pod.labels.iter().find(|(k, _)| k == "pod-template-hash")
                    && let Some(deployment) = current.name.strip_suffix(&format!("-{hash}"))
                {
                    current = OwnerRef {
                        kind: "Deployment".to_owned(),
                        name: deployment.to_owned(),
                    };
                }
                break;
            }
        }
    }
    Some(Workload {
        name: current.name,
        kind: current.kind,
    })
}
