//! Cilium-style labels and numeric security identities.
//!
//! A pod's identity is derived from its namespace and identity-relevant labels only, so
//! every replica of a workload, on every node, gets the same number without any
//! coordination. See `docs/enrichment.md` for the excluded labels and reserved values.

use super::model::{Labels, PodInfo};

pub(crate) const IDENTITY_HOST: u32 = 1;
pub(crate) const IDENTITY_WORLD: u32 = 2;
pub(crate) const IDENTITY_REMOTE_NODE: u32 = 6;
pub(crate) const IDENTITY_KUBE_APISERVER: u32 = 7;

pub(crate) const LABEL_HOST: &str = "reserved:host";
pub(crate) const LABEL_WORLD: &str = "reserved:world";
pub(crate) const LABEL_REMOTE_NODE: &str = "reserved:remote-node";
pub(crate) const LABEL_KUBE_APISERVER: &str = "reserved:kube-apiserver";

/// Cilium reserves identities below 256; cluster-local identities stay below 2^24.
pub(crate) const FIRST_POD_IDENTITY: u32 = 256;
pub(crate) const IDENTITY_LIMIT: u32 = 1 << 24;

/// Labels that differ between replicas of one workload (or per pod) and would give
/// each replica its own identity.
pub(crate) const EXCLUDED_LABEL_KEYS: &[&str] = &[
    "pod-template-hash",
    "pod-template-generation",
    "controller-revision-hash",
    "controller-uid",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-completion-index",
];

pub(crate) const NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
pub(crate) const CLUSTER_LABEL: &str = "io.cilium.k8s.policy.cluster";
pub(crate) const SERVICE_ACCOUNT_LABEL: &str = "io.cilium.k8s.policy.serviceaccount";
pub(crate) const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

fn identity_relevant(key: &str) -> bool {
    !EXCLUDED_LABEL_KEYS.contains(&key)
}

/// The labels Hubble shows for a pod (`k8s:key=value`, sorted), as Cilium derives them:
/// the pod's own labels minus the excluded ones, its namespace's labels, the namespace,
/// the service account and the cluster name.
pub(crate) fn pod_labels(pod: &PodInfo, namespace_labels: Option<&Labels>, cluster: &str) -> Vec<String> {
    let mut labels: Vec<String> = pod
        .labels
        .iter()
        .filter(|(k, _)| identity_relevant(k))
        .map(|(k, v)| format!("k8s:{k}={v}"))
        .collect();
    for (k, v) in namespace_labels.into_iter().flatten() {
        labels.push(format!("k8s:{NAMESPACE_LABELS_PREFIX}{k}={v}"));
    }
    labels.push(format!("k8s:{NAMESPACE_LABEL}={}", pod.namespace));
    labels.push(format!("k8s:{CLUSTER_LABEL}={cluster}"));
    if !pod.service_account.is_empty() {
        labels.push(format!("k8s:{SERVICE_ACCOUNT_LABEL}={}", pod.service_account));
    }
    labels.sort();
    labels.dedup();
    labels.shrink_to_fit();
    labels
}

/// A number in `256..2^24` that depends only on the sorted label set (which includes
/// the namespace). FNV-1a is fixed across builds and hosts, unlike std's hasher.
pub(crate) fn identity_for_labels(sorted_labels: &[String]) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for label in sorted_labels {
        for byte in label.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let span = u64::from(IDENTITY_LIMIT - FIRST_POD_IDENTITY);
    // `hash % span` < 2^24, so the conversion cannot fail.
    FIRST_POD_IDENTITY + u32::try_from(hash % span).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, labels: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            namespace: ns.into(),
            name: "p".into(),
            uid: "u".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            service_account: "default".into(),
            node_name: "n".into(),
            host_network: false,
            ips: vec![],
            terminated: false,
            created: 0,
            owner: None,
        }
    }

    #[test]
    fn labels_use_cilium_syntax_and_drop_per_replica_labels() {
        let p = pod("shop", &[("app", "web"), ("pod-template-hash", "abc")]);
        assert_eq!(
            pod_labels(&p, None, "default"),
            vec![
                "k8s:app=web",
                "k8s:io.cilium.k8s.policy.cluster=default",
                "k8s:io.cilium.k8s.policy.serviceaccount=default",
                "k8s:io.kubernetes.pod.namespace=shop",
            ]
        );
    }

    #[test]
    fn replicas_share_an_identity_and_namespaces_separate_them() {
        let a = pod_labels(&pod("shop", &[("app", "web"), ("pod-template-hash", "a1")]), None, "c");
        let b = pod_labels(&pod("shop", &[("app", "web"), ("pod-template-hash", "b2")]), None, "c");
        let other_ns = pod_labels(&pod("dev", &[("app", "web")]), None, "c");
        let other_app = pod_labels(&pod("shop", &[("app", "api")]), None, "c");
        assert_eq!(identity_for_labels(&a), identity_for_labels(&b));
        assert_ne!(identity_for_labels(&a), identity_for_labels(&other_ns));
        assert_ne!(identity_for_labels(&a), identity_for_labels(&other_app));
    }

    #[test]
    fn identities_stay_outside_the_reserved_range() {
        for i in 0..2000 {
            let labels = vec![format!("k8s:app=a{i}")];
            let id = identity_for_labels(&labels);
            assert!((FIRST_POD_IDENTITY..IDENTITY_LIMIT).contains(&id), "{id}");
        }
    }

    #[test]
    fn identity_is_stable_across_builds() {
        // A changed hash would renumber every workload in a rolling upgrade.
        let labels = vec![
            "k8s:app=web".to_string(),
            "k8s:io.kubernetes.pod.namespace=shop".to_string(),
        ];
        let first = identity_for_labels(&labels);
        assert_eq!(first, identity_for_labels(&labels.clone()));
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"k8s:app=web\0k8s:io.kubernetes.pod.namespace=shop\0" {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(u64::from(first), 256 + hash % ((1 << 24) - 256));
    }
}
