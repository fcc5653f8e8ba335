//! The demo cluster described as Kubernetes objects, for the agents' `--manifests`
//! mode: Nodes with their uplink addresses, Namespaces, and each pod with its IPs,
//! labels and owning workload, so flows name pods the way they would in a cluster.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{DemoCluster, DemoError};

/// How a demo pod appears in Kubernetes.
pub(crate) struct PodMeta {
    pub namespace: &'static str,
    pub pod_name: &'static str,
    pub app: &'static str,
    /// The label key `app` goes under: `k8s-app` for the cluster DNS, as CoreDNS's
    /// real manifests have it (Hubble UI's "hide kube-dns" filter looks for it).
    pub app_key: &'static str,
    /// The controller that owns the pod, by kind and name.
    pub owner: Workload,
}

pub(crate) enum Workload {
    /// A Deployment, through the ReplicaSet `<name>-<hash>`.
    Deployment {
        name: &'static str,
        hash: &'static str,
    },
    StatefulSet {
        name: &'static str,
    },
}

/// Kubernetes names for the demo's pods (`DemoPod::name`).
pub(crate) fn meta(demo_name: &str) -> Option<PodMeta> {
    let deployment = |namespace, pod_name, app, name, hash| PodMeta {
        namespace,
        pod_name,
        app,
        app_key: if app == "kube-dns" { "k8s-app" } else { "app" },
        owner: Workload::Deployment { name, hash },
    };
    Some(match demo_name {
        "frontend" => deployment("shop", "frontend-7d4b9c6f5-q2x8l", "frontend", "frontend", "7d4b9c6f5"),
        "backend" => deployment("shop", "backend-5c8d7b9f4-m7p3z", "backend", "backend", "5c8d7b9f4"),
        "dns" => deployment(
            "kube-system",
            "coredns-6f9c8d7b5-h4k2n",
            "kube-dns",
            "coredns",
            "6f9c8d7b5",
        ),
        "db" => PodMeta {
            namespace: "shop",
            pod_name: "db-0",
            app: "db",
            app_key: "app",
            owner: Workload::StatefulSet { name: "db" },
        },
        _ => return None,
    })
}

fn render(cluster: &DemoCluster) -> Result<String, DemoError> {
    let mut out = String::new();
    let mut push = |text: String| {
        out.push_str(&text);
        out.push_str("---\n");
    };
    for node in cluster.node_names() {
        let Some(node) = cluster.node(node) else { continue };
        push(format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {}\n  labels: {{kubernetes.io/hostname: {}}}\nstatus:\n  addresses:\n  - {{type: InternalIP, address: \"{}\"}}\n",
            node.name, node.name, node.uplink_ip
        ));
    }
    for namespace in ["shop", "kube-system"] {
        push(format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n  labels: {{kubernetes.io/metadata.name: {namespace}}}\n"
        ));
    }
    for (index, pod) in cluster.pods().iter().enumerate() {
        let meta = meta(pod.name).ok_or_else(|| DemoError::Setup(format!("no manifest for pod {}", pod.name)))?;
        let (owner_kind, owner_name, extra_label) = match &meta.owner {
            Workload::Deployment { name, hash } => {
                push(format!(
                    "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}-{hash}\n  namespace: {}\n  uid: rs-{name}\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: {name}, uid: deploy-{name}, controller: true}}]\n",
                    meta.namespace
                ));
                (
                    "ReplicaSet",
                    format!("{name}-{hash}"),
                    format!("pod-template-hash: {hash}"),
                )
            }
            Workload::StatefulSet { name } => (
                "StatefulSet",
                (*name).to_owned(),
                format!("statefulset.kubernetes.io/pod-name: {}", meta.pod_name),
            ),
        };
        let mut text = String::new();
        let _ = write!(
            text,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: {}\n  uid: pod-{index}\n  labels: {{{}: {}, {extra_label}}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: {owner_kind}, name: {owner_name}, uid: owner-{index}, controller: true}}]\nspec:\n  nodeName: {}\n  containers: [{{name: main, image: demo}}]\nstatus:\n  phase: Running\n  podIP: \"{}\"\n  podIPs: [{{ip: \"{}\"}}, {{ip: \"{}\"}}]\n",
            meta.pod_name, meta.namespace, meta.app_key, meta.app, pod.node, pod.pod.ipv4, pod.pod.ipv4, pod.pod.ipv6
        );
        push(text);
    }
    Ok(out)
}

/// Writes `cluster.yaml` into `<workdir>/manifests` and returns that directory.
pub(crate) fn write(cluster: &DemoCluster, workdir: &Path) -> Result<PathBuf, DemoError> {
    let dir = workdir.join("manifests");
    let text = render(cluster)?;
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("cluster.yaml"), text))
        .map_err(|e| DemoError::Setup(format!("{}: {e}", dir.display())))?;
    Ok(dir)
}
