//! Which Hubble servers exist: from `peer.Peer/Notify` on the peer service
//! (re-dialled with backoff whenever the stream breaks), or from a static list.

use sightline_common::backoff::Backoff;
use sightline_common::names::agent_server_name;
use std::collections::HashSet;
use std::time::Duration;

use sightline_proto::peer::{ChangeNotification, ChangeNotificationType, NotifyRequest, peer_client::PeerClient};
use tokio::sync::{mpsc, watch};

use crate::address::{AddressError, PeerAddress};
use crate::dial::Dialer;

/// A Hubble server as announced by the peer service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The node name, the key the relay tracks the peer by.
    pub name: String,
    /// Where to dial it.
    pub address: PeerAddress,
    /// The name its server certificate must carry, when TLS is on.
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// One change to the set of peers, from the peer service or the static list.
pub enum PeerChange {
    /// A peer appeared or its address changed.
    Upsert(PeerInfo),
    /// The named peer left.
    Delete(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
/// Why a peer source is unusable.
pub enum DiscoveryError {
    #[error("static peer {0:?}: expected name=address")]
    /// A `--peers` entry without `name=address`.
    StaticPeerSyntax(String),
    #[error(transparent)]
    /// A peer address does not parse.
    Address(#[from] AddressError),
}

/// Parses `--peers name=address,...`. With `tls_cluster` (client TLS on), each TCP
/// peer is verified against the name its agent announces over Notify,
/// `<name>.<cluster>.hubble-grpc.cilium.io`, so the same certificates serve both.
pub fn static_peers(entries: &[String], tls_cluster: Option<&str>) -> Result<Vec<PeerInfo>, DiscoveryError> {
    entries
        .iter()
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (name, address) = entry
                .split_once('=')
                .ok_or_else(|| DiscoveryError::StaticPeerSyntax(entry.clone()))?;
            if name.trim().is_empty() {
                return Err(DiscoveryError::StaticPeerSyntax(entry.clone()));
            }
            let name = name.trim();
            let address = PeerAddress::parse(address)?;
            let tls_server_name = match (&address, tls_cluster) {
                (PeerAddress::Tcp(_), Some(cluster)) => Some(agent_server_name(name, cluster)),
                _ => None,
            };
            Ok(PeerInfo {
                name: name.to_owned(),
                address,
                tls_server_name,
            })
        })
        .collect()
}

/// Turns one notification into a change; malformed ones are reported, not applied.
pub fn change_from(notification: ChangeNotification) -> Result<PeerChange, String> {
    let tls_server_name = notification
        .tls
        .map(|tls| tls.server_name)
        .filter(|name| !name.is_empty());
    match ChangeNotificationType::try_from(notification.r#type) {
        Ok(ChangeNotificationType::PeerDeleted) => Ok(PeerChange::Delete(notification.name)),
        Ok(ChangeNotificationType::PeerAdded | ChangeNotificationType::PeerUpdated) => {
            let address = PeerAddress::parse(&notification.address).map_err(|e| e.to_string())?;
            Ok(PeerChange::Upsert(PeerInfo {
                name: notification.name,
                address,
                tls_server_name,
            }))
        }
        _ => Err(format!(
            "peer {:?}: unknown change type {}",
            notification.name, notification.r#type
        )),
    }
}

/// After a re-dial, how long the new Notify stream has to announce a peer again
/// before the relay forgets it: the stream starts with every known peer at once.
const RESYNC_GRACE: Duration = Duration::from_secs(2);
/// A Notify stream that lasted this long (long enough to resync) ended a working
/// session: the next re-dial starts the backoff again.
const STABLE_SESSION: Duration = RESYNC_GRACE;

/// Follows the peer service until `changes` is closed, re-dialling with exponential
/// backoff (1 s doubling up to `max_backoff`, ±20 %, back to 1 s after a stream that
/// worked for a while, or when `max_backoff` changes).
/// `connected` tells health checks whether the Notify stream is currently up.
pub async fn follow_peer_service(
    dialer: Dialer,
    service: PeerAddress,
    server_name: Option<String>,
    mut max_backoff: watch::Receiver<Duration>,
    changes: mpsc::Sender<PeerChange>,
    connected: watch::Sender<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), *max_backoff.borrow_and_update(), 0.2);
    let mut known = HashSet::new();
    loop {
        let began = tokio::time::Instant::now();
        let session = Session {
            dialer: &dialer,
            service: &service,
            server_name: server_name.as_deref(),
            changes: &changes,
            connected: &connected,
        };
        match session.run(&mut known).await {
            Ok(()) => return, // the receiver is gone: the relay is shutting down
            Err(err) => {
                if connected.send_replace(false) && began.elapsed() >= STABLE_SESSION {
                    // It was up for a while: this is a new outage, not the next
                    // failure of the last one. A service that drops every stream at
                    // once still backs off.
                    backoff.reset();
                }
                if max_backoff.has_changed().unwrap_or(false) {
                    // A new --retry-timeout starts its own sequence from the shortest wait.
                    backoff = Backoff::new(Duration::from_secs(1), *max_backoff.borrow_and_update(), 0.2);
                }
                tracing::warn!(peer_service = %service, %err, retry_in = ?backoff.current(), "peer service unavailable");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_wait(Duration::ZERO, fastrand::f64())) => {}
            () = changes.closed() => return,
        }
    }
}

/// One Notify stream.
struct Session<'a> {
    dialer: &'a Dialer,
    service: &'a PeerAddress,
    server_name: Option<&'a str>,
    changes: &'a mpsc::Sender<PeerChange>,
    connected: &'a watch::Sender<bool>,
}

impl Session<'_> {
    /// Streams changes until the stream breaks. `known` holds the peers announced
    /// and not deleted so far, across sessions: peers a new session does not announce
    /// again within [`RESYNC_GRACE`] were deleted while it was down, and are deleted.
    async fn run(&self, known: &mut HashSet<String>) -> Result<(), String> {
        let server_name = if self.dialer.tls_enabled() {
            self.server_name
        } else {
            None
        };
        let channel = self
            .dialer
            .connect(self.service, server_name)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = PeerClient::new(channel)
            .notify(NotifyRequest {})
            .await
            .map_err(|status| format!("Notify: {}", status.message()))?
            .into_inner();
        self.connected.send_replace(true);
        tracing::info!(peer_service = %self.service, "following peer service");
        let mut unconfirmed = (!known.is_empty()).then(|| known.clone());
        let resync = tokio::time::sleep(RESYNC_GRACE);
        tokio::pin!(resync);
        loop {
            let message = tokio::select! {
                message = stream.message() => message,
                () = &mut resync, if unconfirmed.is_some() => {
                    for name in unconfirmed.take().into_iter().flatten() {
                        tracing::info!(peer = %name, "peer not announced again after reconnecting; removing it");
                        known.remove(&name);
                        if self.changes.send(PeerChange::Delete(name)).await.is_err() {
                            return Ok(());
                        }
                    }
                    continue;
                }
            };
            let notification = match message {
                Ok(Some(notification)) => notification,
                Ok(None) => return Err("Notify stream ended".into()),
                Err(status) => return Err(format!("Notify stream: {}", status.message())),
            };
            let change = match change_from(notification) {
                Ok(change) => change,
                Err(err) => {
                    tracing::warn!(%err, "ignoring peer notification");
                    continue;
                }
            };
            let name = match &change {
                PeerChange::Upsert(info) => {
                    known.insert(info.name.clone());
                    &info.name
                }
                PeerChange::Delete(name) => {
                    known.remove(name);
                    name
                }
            };
            if let Some(unconfirmed) = &mut unconfirmed {
                unconfirmed.remove(name);
            }
            if self.changes.send(change).await.is_err() {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_proto::peer::Tls;

    #[test]
    fn static_peers_parse_and_errors_name_the_entry() {
        let peers = static_peers(&["a=10.0.0.1:4244".into(), "b=unix:///run/b.sock".into()], None).expect("valid");
        assert_eq!(peers[0].name, "a");
        assert_eq!(peers[0].tls_server_name, None, "plaintext");
        assert_eq!(peers[1].address, PeerAddress::Unix("/run/b.sock".into()));
        assert_eq!(
            static_peers(&["10.0.0.1".into()], None),
            Err(DiscoveryError::StaticPeerSyntax("10.0.0.1".into()))
        );
    }

    #[test]
    fn static_tcp_peers_under_tls_expect_the_names_agents_announce() {
        let entries = ["node.a=10.0.0.1:4244".into(), "b=unix:///run/b.sock".into()];
        let peers = static_peers(&entries, Some("prod.eu")).expect("valid");
        assert_eq!(
            peers[0].tls_server_name.as_deref(),
            Some("node-a.prod-eu.hubble-grpc.cilium.io")
        );
        assert_eq!(peers[1].tls_server_name, None, "unix sockets never use TLS");
    }

    #[test]
    fn notifications_become_changes() {
        let added = ChangeNotification {
            name: "default/node-a".into(),
            address: "10.0.0.1:4244".into(),
            r#type: ChangeNotificationType::PeerAdded.into(),
            tls: Some(Tls {
                server_name: "node-a.default.hubble-grpc.cilium.io".into(),
            }),
        };
        let Ok(PeerChange::Upsert(info)) = change_from(added) else {
            panic!("upsert expected")
        };
        assert_eq!(
            info.tls_server_name.as_deref(),
            Some("node-a.default.hubble-grpc.cilium.io")
        );
        let deleted = ChangeNotification {
            name: "x".into(),
            r#type: 2,
            ..Default::default()
        };
        assert_eq!(change_from(deleted), Ok(PeerChange::Delete("x".into())));
        let garbage = ChangeNotification {
            name: "x".into(),
            address: "nowhere".into(),
            r#type: 1,
            tls: None,
        };
        assert!(change_from(garbage).expect_err("bad address").contains("nowhere"));
    }
}
