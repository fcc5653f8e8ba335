//! What the enrichment index is told about the agent itself.

/// What the index needs to know about the agent itself.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// Cluster name (`default` unless configured), put in `cluster_name` and the
    /// `io.cilium.k8s.policy.cluster` label.
    pub cluster: String,
    /// This node's name as Kubernetes knows it: its IPs are `reserved:host`, its pods
    /// get endpoint events.
    pub local_node: String,
    /// The port peers are told to dial (the agent's gRPC port).
    pub agent_port: u16,
}
