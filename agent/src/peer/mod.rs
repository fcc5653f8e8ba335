//! `peer.Peer`: tells clients (hubble-relay) which agents make up the cluster.
//!
//! Peers come from a [`PeerSource`]: a watch over the full peer set. The service
//! diffs successive sets into PEER_ADDED / PEER_UPDATED / PEER_DELETED, so a source
//! (`--peers`, the cluster's Node objects, or the agent alone when it has neither)
//! only has to publish the current set.

use sightline_common::names;

mod service;
mod source;

pub(crate) use service::PeerService;
pub use source::{AnnouncedPeers, PeerError, PeerSet, PeerSource, parse_peers};

/// One agent of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The Kubernetes node name (or the `--peers` name), without the cluster prefix;
    /// hubble-relay shows it as the node and the TLS server name is built from it.
    pub node_name: String,
    /// The cluster this agent belongs to (`--cluster-name`); empty or `default`
    /// leaves the node name unprefixed, as Hubble does.
    pub cluster_name: String,
    /// `host:port` (or a unix socket path) where its Hubble server listens.
    pub address: String,
}

impl Peer {
    /// Hubble's `Node.Fullname()`: `<cluster>/<node>` unless the cluster is empty or `default`.
    pub fn full_name(&self) -> String {
        names::absolute_node_name(&self.cluster_name, &self.node_name)
    }

    /// The name hubble-relay verifies this agent's certificate against.
    pub fn tls_server_name(&self) -> String {
        names::agent_server_name(&self.node_name, &self.cluster_name)
    }
}
