//! Where the peer list comes from.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::watch;

use super::Peer;

/// The current peers, keyed by full name.
pub type PeerSet = Arc<BTreeMap<String, Peer>>;

/// A source of the cluster's agents. Implementations publish the whole current set
/// whenever it changes; the service computes the notifications.
pub trait PeerSource: Send + Sync + 'static {
    /// A receiver holding the current set, marked changed on each replacement so a
    /// `Notify` stream wakes instead of polling (quick successive sets may coalesce).
    fn subscribe(&self) -> watch::Receiver<PeerSet>;
}

/// Why a `--peers` list was refused; each variant carries the offending entry or name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    /// An entry lacks the `=` or has an empty name or address.
    #[error("invalid peer {0:?}: expected name=address")]
    Malformed(String),
    /// Two entries share a node name, which would make one of them unreachable by name.
    #[error("duplicate peer name {0:?}")]
    Duplicate(String),
}

/// Parses `--peers name=address,...` entries.
pub fn parse_peers(entries: &[String], cluster_name: &str) -> Result<Vec<Peer>, PeerError> {
    let mut peers: Vec<Peer> = Vec::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let (name, address) = entry
            .split_once('=')
            .ok_or_else(|| PeerError::Malformed(entry.to_owned()))?;
        let (name, address) = (name.trim(), address.trim());
        if name.is_empty() || address.is_empty() {
            return Err(PeerError::Malformed(entry.to_owned()));
        }
        if peers.iter().any(|p| p.node_name == name) {
            return Err(PeerError::Duplicate(name.to_owned()));
        }
        peers.push(Peer {
            node_name: name.to_owned(),
            cluster_name: cluster_name.to_owned(),
            address: address.to_owned(),
        });
    }
    Ok(peers)
}

/// The peer set this agent announces: `--peers`, or the cluster's Nodes (refilled on
/// every Node change), or the agent alone. Replacing it notifies every subscriber.
#[derive(Debug)]
pub struct AnnouncedPeers {
    sender: watch::Sender<PeerSet>,
}

fn to_set(peers: Vec<Peer>) -> PeerSet {
    Arc::new(peers.into_iter().map(|p| (p.full_name(), p)).collect())
}

impl AnnouncedPeers {
    /// Starts with `peers` (possibly empty); peers sharing a full name keep the last one.
    pub fn new(peers: Vec<Peer>) -> Self {
        Self {
            sender: watch::Sender::new(to_set(peers)),
        }
    }

    /// Publishes `peers` as the whole new set: peers missing from it are announced as
    /// deleted, new ones as added, changed addresses as updated.
    pub fn replace(&self, peers: Vec<Peer>) {
        self.sender.send_replace(to_set(peers));
    }
}

impl PeerSource for AnnouncedPeers {
    fn subscribe(&self) -> watch::Receiver<PeerSet> {
        self.sender.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_address_pairs() {
        let peers = parse_peers(&["a=10.0.0.1:4244".into(), " b = 10.0.0.2:4244 ".into()], "c1").expect("valid");
        assert_eq!(
            peers[1],
            Peer {
                node_name: "b".into(),
                cluster_name: "c1".into(),
                address: "10.0.0.2:4244".into()
            }
        );
        assert_eq!(
            parse_peers(&["nope".into()], "c"),
            Err(PeerError::Malformed("nope".into()))
        );
        assert_eq!(
            parse_peers(&["a=x".into(), "a=y".into()], "c"),
            Err(PeerError::Duplicate("a".into()))
        );
    }
}
