//! The `peer.Peer/Notify` stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use sightline_proto::peer::peer_server::Peer as PeerApi;
use sightline_proto::peer::{ChangeNotification, ChangeNotificationType, NotifyRequest, Tls};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::Peer;
use super::source::{PeerSet, PeerSource};

/// The `peer.Peer` gRPC service over a [`PeerSource`].
#[derive(Clone)]
pub(crate) struct PeerService {
    source: Arc<dyn PeerSource>,
    /// Whether agents serve TLS, i.e. whether notifications carry a server name.
    tls: bool,
}

impl PeerService {
    pub(crate) fn new(source: Arc<dyn PeerSource>, tls: bool) -> Self {
        Self { source, tls }
    }
}

fn notification(peer: &Peer, kind: ChangeNotificationType, tls: bool) -> ChangeNotification {
    ChangeNotification {
        name: peer.full_name(),
        address: peer.address.clone(),
        r#type: kind as i32,
        tls: tls.then(|| Tls {
            server_name: peer.tls_server_name(),
        }),
    }
}

/// Notifications turning `old` into `new`.
pub(super) fn diff(old: &PeerSet, new: &PeerSet, tls: bool) -> Vec<ChangeNotification> {
    let mut out = Vec::new();
    for (name, peer) in old.iter() {
        if !new.contains_key(name) {
            out.push(notification(peer, ChangeNotificationType::PeerDeleted, tls));
        }
    }
    for (name, peer) in new.iter() {
        match old.get(name) {
            None => out.push(notification(peer, ChangeNotificationType::PeerAdded, tls)),
            Some(before) if before != peer => out.push(notification(peer, ChangeNotificationType::PeerUpdated, tls)),
            Some(_) => {}
        }
    }
    out
}

struct State {
    updates: watch::Receiver<PeerSet>,
    current: PeerSet,
    pending: VecDeque<ChangeNotification>,
}

type NotifyStream = Pin<Box<dyn Stream<Item = Result<ChangeNotification, Status>> + Send>>;

#[tonic::async_trait]
impl PeerApi for PeerService {
    type NotifyStream = NotifyStream;

    async fn notify(&self, _request: Request<NotifyRequest>) -> Result<Response<Self::NotifyStream>, Status> {
        let mut updates = self.source.subscribe();
        let current = updates.borrow_and_update().clone();
        let tls = self.tls;
        let pending = diff(&PeerSet::default(), &current, tls).into();
        let state = State {
            updates,
            current,
            pending,
        };
        let stream = futures_util::stream::unfold(state, move |mut state| async move {
            loop {
                if let Some(next) = state.pending.pop_front() {
                    return Some((Ok(next), state));
                }
                // The source went away: the peer list can no longer change, keep the stream open.
                if state.updates.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
                let new = state.updates.borrow_and_update().clone();
                state.pending.extend(diff(&state.current, &new, tls));
                state.current = new;
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(peers: &[(&str, &str)]) -> PeerSet {
        Arc::new(
            peers
                .iter()
                .map(|(n, a)| {
                    let p = Peer {
                        node_name: n.to_string(),
                        cluster_name: "prod.eu".into(),
                        address: a.to_string(),
                    };
                    (p.full_name(), p)
                })
                .collect(),
        )
    }

    #[test]
    fn diff_reports_added_updated_deleted() {
        let old = set(&[("a", "1"), ("b", "2")]);
        let new = set(&[("b", "3"), ("c.x", "4")]);
        let got: Vec<_> = diff(&old, &new, true)
            .into_iter()
            .map(|n| (n.name, n.r#type, n.tls.map(|t| t.server_name)))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "prod.eu/a".into(),
                    ChangeNotificationType::PeerDeleted as i32,
                    Some("a.prod-eu.hubble-grpc.cilium.io".into())
                ),
                (
                    "prod.eu/b".into(),
                    ChangeNotificationType::PeerUpdated as i32,
                    Some("b.prod-eu.hubble-grpc.cilium.io".into())
                ),
                (
                    "prod.eu/c.x".into(),
                    ChangeNotificationType::PeerAdded as i32,
                    Some("c-x.prod-eu.hubble-grpc.cilium.io".into())
                ),
            ]
        );
        assert!(diff(&new, &new, false).is_empty());
        assert!(diff(&old, &new, false).iter().all(|n| n.tls.is_none()));
    }
}
