//! Other agents, one per Node object: what the peer service announces.

use sightline_common::names::absolute_node_name;
use std::net::{IpAddr, SocketAddr};

use tokio::sync::watch;

use super::config::IndexConfig;
use super::state::State;

/// One agent as Hubble's peer service names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePeer {
    /// `<cluster>/<node>`, or just `<node>` in the `default` cluster (Hubble's
    /// absolute node name).
    pub name: String,
    /// The node's InternalIP (IPv4 preferred, else the first ExternalIP) and the agent port.
    pub address: SocketAddr,
}

/// Snapshots of every node with an address; `changed().await` wakes on a change.
pub type NodePeers = watch::Receiver<Vec<NodePeer>>;

fn preferred(ips: &[IpAddr]) -> Option<IpAddr> {
    ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()).copied()
}

pub(super) fn peers_of(state: &State, config: &IndexConfig) -> Vec<NodePeer> {
    let mut peers: Vec<NodePeer> = state
        .nodes
        .values()
        .filter_map(|node| {
            let ip = preferred(&node.internal_ips).or_else(|| preferred(&node.external_ips))?;
            Some(NodePeer {
                name: absolute_node_name(&config.cluster, &node.name),
                address: SocketAddr::new(ip, config.agent_port),
            })
        })
        .collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    peers
}
