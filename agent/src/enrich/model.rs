//! The few fields of each Kubernetes object the agent uses. Watchers and the manifest
//! loader map API objects to these before storing them, so managed fields, specs and
//! statuses we never read are dropped on arrival.

use std::net::IpAddr;

/// Which watcher or manifest kind an object came from; a relist replaces one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Pod,
    Service,
    EndpointSlice,
    Namespace,
    Node,
    /// Owners are watched per kind, so each kind is relisted on its own.
    ReplicaSet,
    Job,
    /// Deployments, StatefulSets, DaemonSets, CronJobs: top-level workloads.
    Workload,
    NetworkPolicy,
}

pub const ALL_KINDS: [Kind; 9] = [
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
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: Labels,
    pub service_account: String,
    pub node_name: String,
    pub host_network: bool,
    pub ips: Vec<IpAddr>,
    /// Succeeded, Failed, or being deleted: its IPs may already belong to someone else.
    pub terminated: bool,
    /// Creation time (unix ns); when two live pods claim an IP, the newer one wins.
    pub created: i128,
    pub owner: Option<OwnerRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub port: u16,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub service_type: String,
    /// ClusterIPs, external IPs and load-balancer ingress IPs.
    pub ips: Vec<IpAddr>,
    pub ports: Vec<ServicePort>,
    pub external_traffic_policy: String,
    pub internal_traffic_policy: String,
}

/// Only the `default/kubernetes` slices matter: their addresses are the API servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSliceInfo {
    pub namespace: String,
    pub name: String,
    pub service_name: String,
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: Labels,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    /// InternalIPs first, then ExternalIPs, in the order the node reports them.
    pub internal_ips: Vec<IpAddr>,
    pub external_ips: Vec<IpAddr>,
}

/// A ReplicaSet, Job, Deployment, StatefulSet, DaemonSet or CronJob: enough to walk
/// a pod's owner chain up to the workload a user recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerInfo {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub owner: Option<OwnerRef>,
}

impl OwnerInfo {
    pub fn watched_kind(&self) -> Kind {
        match self.kind.as_str() {
            "ReplicaSet" => Kind::ReplicaSet,
            "Job" => Kind::Job,
            _ => Kind::Workload,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub generation: i64,
    /// Ingress plus egress rules, as Cilium counts a translated NetworkPolicy.
    pub rule_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    Pod(PodInfo),
    Service(ServiceInfo),
    EndpointSlice(EndpointSliceInfo),
    Namespace(NamespaceInfo),
    Node(NodeInfo),
    Owner(OwnerInfo),
    NetworkPolicy(PolicyInfo),
}

impl Object {
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
    Upsert(Object),
    Delete(Kind, String),
    /// A complete list of one kind (a watcher's initial list or relist, a manifest
    /// reload): anything of that kind not in it was deleted meanwhile.
    Replace(Kind, Vec<Object>),
}
