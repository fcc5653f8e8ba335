//! The few fields of each Kubernetes object the agent uses. Watchers and the manifest
//! loader map API objects to these before storing them, so managed fields, specs and
//! statuses we never read are dropped on arrival.

use std::net::IpAddr;

/// Which watcher or manifest kind an object came from; a relist replaces one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Pods: the endpoints flows are named after.
    Pod,
    /// Services: ClusterIP, external and load-balancer addresses, and NodePorts.
    Service,
    /// EndpointSlices; only those of `default/kubernetes` are kept (API server addresses).
    EndpointSlice,
    /// Namespaces, whose labels go on their pods' endpoints.
    Namespace,
    /// Nodes: `reserved:host`/`reserved:remote-node` addresses and the peer list.
    Node,
    /// Owners are watched per kind, so each kind is relisted on its own.
    ReplicaSet,
    /// Jobs, the owners between a CronJob and its pods.
    Job,
    /// Deployments, StatefulSets, DaemonSets, CronJobs: top-level workloads.
    Workload,
    /// NetworkPolicies, reported as policy-update agent events.
    NetworkPolicy,
}

/// Every [`Kind`], for building one complete relist per kind.
pub(crate) const ALL_KINDS: [Kind; 9] = [
    Kind::Pod,
    Kind::Service,
    Kind::EndpointSlice,
    Kind::Namespace,
    Kind::Node,
    Kind::ReplicaSet,
    Kind::Job,
    Kind::Workload,
    Kind::NetworkPolicy,
];

/// Sorted by key; a Vec is a third of a BTreeMap's size for the few labels a pod has.
pub type Labels = Vec<(String, String)>;

/// An ownerReference (`kind`, `name`) in the object's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerRef {
    /// The owner's kind as written in the reference, e.g. `ReplicaSet`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
}

/// A pod: its addresses become an endpoint with its labels and workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    /// The pod's namespace (`Endpoint.namespace`).
    pub namespace: String,
    /// The pod's name (`Endpoint.pod_name`).
    pub name: String,
    /// `metadata.uid`; endpoint IDs in agent events derive from it, and it breaks ties
    /// between two pods created at the same instant.
    pub uid: String,
    /// The pod's labels, which become `k8s:` endpoint labels.
    pub labels: Labels,
    /// `spec.serviceAccountName` (`default` when unset), for the service-account label.
    pub service_account: String,
    /// The node it is scheduled on, empty while pending; pods of this agent's node
    /// get endpoint agent events.
    pub node_name: String,
    /// A host-network pod shares its node's addresses, so they stay the node's.
    pub host_network: bool,
    /// `status.podIPs` (with `status.podIP` first); empty until the pod has an address.
    pub ips: Vec<IpAddr>,
    /// Succeeded, Failed, or being deleted: its IPs may already belong to someone else.
    pub terminated: bool,
    /// Creation time (unix ns); when two live pods claim an IP, the newer one wins.
    pub created: i128,
    /// The controlling owner, the start of the walk up to the workload.
    pub owner: Option<OwnerRef>,
}

/// One port of a Service, for matching NodePort traffic and Service translations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The Service port clients dial at the Service address.
    pub port: u16,
    /// As written in the spec: `TCP`, `UDP` or `SCTP` (see [`ServicePort::ip_protocol`]).
    pub protocol: String,
    /// Open on every node address (NodePort and LoadBalancer Services).
    pub node_port: Option<u16>,
}

impl ServicePort {
    /// The IP protocol number, as conntrack and the datapath name it; `None` for
    /// a protocol Services do not carry.
    pub fn ip_protocol(&self) -> Option<u8> {
        match self.protocol.to_ascii_uppercase().as_str() {
            "TCP" => Some(6),
            "UDP" => Some(17),
            "SCTP" => Some(132),
            _ => None,
        }
    }
}

/// A Service: flows to its addresses carry `destination_service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The Service's namespace (`Service.namespace` on flows).
    pub namespace: String,
    /// The Service's name (`Service.name` on flows).
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.type` (`ClusterIP` when unset), reported in service-upsert agent events.
    pub service_type: String,
    /// ClusterIPs, external IPs and load-balancer ingress IPs.
    pub ips: Vec<IpAddr>,
    /// The Service's ports; a `node_port` here makes the port open on every node.
    pub ports: Vec<ServicePort>,
    /// `spec.externalTrafficPolicy`, empty when unset; only reported in agent events.
    pub external_traffic_policy: String,
    /// `spec.internalTrafficPolicy`, empty when unset; only reported in agent events.
    pub internal_traffic_policy: String,
}

/// Only the `default/kubernetes` slices matter: their addresses are the API servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSliceInfo {
    /// The slice's namespace.
    pub namespace: String,
    /// The slice's own name (generated, one Service may have several).
    pub name: String,
    /// The `kubernetes.io/service-name` label: the Service the slice belongs to.
    pub service_name: String,
    /// The endpoints' addresses, which become `reserved:kube-apiserver`.
    pub addresses: Vec<IpAddr>,
}

/// A namespace: its labels go on its pods' endpoints, as in Cilium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The namespace's name.
    pub name: String,
    /// Its labels, which become `k8s:io.cilium.k8s.namespace.labels.` endpoint labels.
    pub labels: Labels,
}

/// A node: its addresses are `reserved:host` on this node and `reserved:remote-node`
/// elsewhere, and it is announced as a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's name, matched against `--node-name` to tell this node from others.
    pub name: String,
    /// The InternalIP addresses, in the order the node reports them; the peer is
    /// announced at the first IPv4 one, else the first.
    pub internal_ips: Vec<IpAddr>,
    /// The ExternalIP addresses; the peer uses them only when there is no InternalIP.
    pub external_ips: Vec<IpAddr>,
}

/// A ReplicaSet, Job, Deployment, StatefulSet, DaemonSet or CronJob: enough to walk
/// a pod's owner chain up to the workload a user recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInfo {
    /// The owner's namespace (owner references never cross namespaces).
    pub namespace: String,
    /// The API kind, e.g. `Deployment`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// Its own controlling owner, e.g. a ReplicaSet's Deployment.
    pub owner: Option<OwnerRef>,
}

impl OwnerInfo {
    /// The watcher kind this owner is listed under: ReplicaSets and Jobs have their
    /// own, every other kind is a [`Kind::Workload`].
    pub(crate) fn watched_kind(&self) -> Kind {
        match self.kind.as_str() {
            "ReplicaSet" => Kind::ReplicaSet,
            "Job" => Kind::Job,
            _ => Kind::Workload,
        }
    }
}

/// A NetworkPolicy, reported in policy-update agent events as Cilium reports a
/// translated one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
    /// `metadata.uid`, put in the event's `io.cilium.k8s.policy.uid` label.
    pub uid: String,
    /// `metadata.generation`, 0 when unset.
    pub generation: i64,
    /// Ingress plus egress rules, as Cilium counts a translated NetworkPolicy.
    pub rule_count: i64,
}

/// One Kubernetes object in the form the index stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A pod.
    Pod(PodInfo),
    /// A Service.
    Service(ServiceInfo),
    /// An EndpointSlice of the `kubernetes` Service.
    EndpointSlice(EndpointSliceInfo),
    /// A namespace.
    Namespace(NamespaceInfo),
    /// A node.
    Node(NodeInfo),
    /// A ReplicaSet, Job or top-level workload.
    Owner(OwnerInfo),
    /// A NetworkPolicy.
    NetworkPolicy(PolicyInfo),
}

impl Object {
    /// The watcher kind this object belongs to, which a [`Change::Replace`] of that
    /// kind replaces.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Pod(_) => Kind::Pod,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Namespace(_) => Kind::Namespace,
            Object::Node(_) => Kind::Node,
            Object::Owner(o) => o.watched_kind(),
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
        }
    }

    /// Unique within its kind.
    pub fn key(&self) -> String {
        match self {
            Object::Pod(p) => format!("{}/{}", p.namespace, p.name),
            Object::Service(s) => format!("{}/{}", s.namespace, s.name),
            Object::EndpointSlice(s) => format!("{}/{}", s.namespace, s.name),
            Object::Namespace(n) => n.name.clone(),
            Object::Node(n) => n.name.clone(),
            Object::Owner(o) => format!("{}/{}/{}", o.kind, o.namespace, o.name),
            Object::NetworkPolicy(p) => format!("{}/{}", p.namespace, p.name),
        }
    }
}

/// What a watcher or the manifest loader tells the index.
// Changes are applied one at a time and never stored, so their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Change {
    /// Added or modified.
    Upsert(Object),
    /// Deleted: the kind and the [`Object::key`].
    Delete(Kind, String),
    /// A complete list of one kind (a watcher's initial list or relist, a manifest
    /// reload): anything of that kind not in it was deleted meanwhile.
    Replace(Kind, Vec<Object>),
}
