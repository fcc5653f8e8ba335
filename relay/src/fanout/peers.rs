//! Which peers one fan-out streams from: the calls it opened, the peers it waits
//! for after a broken stream or an error, and the node status events that follow
//! from the pool's changes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use sightline_proto::relay::{NodeState, NodeStatusEvent};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};

use super::upstream::{self, Call, Upstream};
use crate::discovery::PeerInfo;
use crate::merge::Merge;
use crate::pool::{PeerView, Pool};

/// A peer that answered with an error is asked again no sooner than this (Hubble's
/// relay merges its repeated errors over the same window).
const ERROR_RETRY: Duration = Duration::from_secs(10);

/// One peer's open stream.
struct Active {
    /// The peer as it was when the stream was opened: a new address means a new stream.
    info: PeerInfo,
    /// The pool's connection the call runs on.
    connection: u64,
    call: u64,
    abort: AbortHandle,
}

struct Waiting {
    /// The connection the failed call used.
    connection: u64,
    retry_at: Instant,
}

struct Errored {
    retry_at: Instant,
    /// What the peer said, so the same answer is not reported again.
    message: String,
}

/// What a failed call means for the client.
pub(super) enum Failure {
    /// The call was already replaced or abandoned: nothing to say.
    Stale,
    /// The same error as last time: already reported.
    Repeated,
    /// Report this node status.
    Report(NodeStatusEvent),
    /// Every node refused the request itself: that is the client's answer.
    EndClient(Status),
}

pub(super) struct PeerStreams<M: Merge> {
    pool: Pool,
    metadata: MetadataMap,
    request: M::Request,
    follow: bool,
    upstream_tx: mpsc::Sender<Upstream<M>>,
    tasks: JoinSet<()>,
    /// Peers with a stream open for this client.
    active: BTreeMap<String, Active>,
    /// Calls made so far; numbers them.
    calls: u64,
    /// Calls made when the request came in, numbered `0..initial_calls`.
    initial_calls: u64,
    /// Of those, how many the peer rejected as an invalid request.
    rejected_as_invalid: u64,
    /// Whether any peer has sent a response.
    delivered: bool,
    /// Peers whose stream broke; they rejoin on a new connection, or on the old
    /// one after a while if it stays up (the call failed, not the peer).
    awaiting_reconnect: HashMap<String, Waiting>,
    /// Every peer the pool listed when this stream last looked: the ones that
    /// disappear from it are reported gone, streaming or not.
    known: HashSet<String>,
    /// Peers that answered with an error, and when to ask them again.
    errored: HashMap<String, Errored>,
}

impl<M: Merge> PeerStreams<M> {
    pub(super) fn new(
        pool: Pool,
        metadata: MetadataMap,
        request: M::Request,
        follow: bool,
        upstream_tx: mpsc::Sender<Upstream<M>>,
    ) -> Self {
        Self {
            pool,
            metadata,
            request,
            follow,
            upstream_tx,
            tasks: JoinSet::new(),
            active: BTreeMap::new(),
            calls: 0,
            initial_calls: 0,
            rejected_as_invalid: 0,
            delivered: false,
            awaiting_reconnect: HashMap::new(),
            known: HashSet::new(),
            errored: HashMap::new(),
        }
    }

    /// Opens the client's request on every connected peer of `peers`, the pool as
    /// the request found it.
    pub(super) fn open_initial(&mut self, peers: &[PeerView]) {
        self.known = peers.iter().map(|p| p.info.name.clone()).collect();
        for peer in peers.iter().filter(|p| p.client().is_some()) {
            self.spawn_upstream(peer, self.request.clone());
        }
        self.initial_calls = self.calls;
    }

    /// Peers with a stream open.
    pub(super) fn streaming(&self) -> impl Iterator<Item = &String> {
        self.active.keys()
    }

    pub(super) fn none_streaming(&self) -> bool {
        self.active.is_empty()
    }

    fn spawn_upstream(&mut self, peer: &PeerView, request: M::Request) {
        let (Some(channel), Some(connection)) = (peer.channel(), peer.connection()) else {
            return;
        };
        let id = self.calls;
        self.calls += 1;
        let answer_timeout = self.pool.dial_timeout();
        let call = Call::<M> {
            name: peer.info.name.as_str().into(),
            id,
            channel,
            request: Request::from_parts(self.metadata.clone(), Default::default(), request),
            answer_timeout,
            idle_timeout: (!self.follow).then_some(answer_timeout),
        };
        let abort = self.tasks.spawn(upstream::run(call, self.upstream_tx.clone()));
        self.active.insert(
            peer.info.name.clone(),
            Active {
                info: peer.info.clone(),
                connection,
                call: id,
                abort,
            },
        );
    }

    fn is_open(&self, peer: &str, call: u64) -> bool {
        self.active.get(peer).is_some_and(|active| active.call == call)
    }

    /// Forgets `peer`'s stream if `call` is still the one open, returning it; None
    /// for a call that was already replaced or abandoned.
    fn close(&mut self, peer: &str, call: u64) -> Option<Active> {
        // Finished tasks stay in the set until collected; a long follow stream
        // retrying a failing peer would otherwise keep every one of them.
        while self.tasks.try_join_next().is_some() {}
        if self.is_open(peer, call) {
            self.active.remove(peer)
        } else {
            None
        }
    }

    /// `peer`'s `call` delivered responses: whether they are still wanted (not
    /// what a peer that left or moved still had in flight).
    pub(super) fn delivered(&mut self, peer: &str, call: u64) -> bool {
        if !self.is_open(peer, call) {
            return false;
        }
        self.delivered = true;
        if !self.errored.is_empty() {
            // It answers again: a later error is news.
            self.errored.remove(peer);
        }
        true
    }

    /// `peer`'s `call` ended cleanly.
    pub(super) fn ended(&mut self, peer: &str, call: u64) {
        self.close(peer, call);
    }

    /// `peer`'s `call` ended with `status`.
    pub(super) fn failed(&mut self, peer: &str, call: u64, status: Status) -> Failure {
        let Some(closed) = self.close(peer, call) else {
            return Failure::Stale;
        };
        tracing::info!(%peer, code = ?status.code(), message = status.message(), "peer stream ended with an error");
        if status.code() == Code::InvalidArgument && call < self.initial_calls {
            self.rejected_as_invalid += 1;
            if self.rejected_as_invalid == self.initial_calls && !self.delivered {
                // Hubble-relay reports NODE_ERROR per node instead, every 10 s
                // while following.
                return Failure::EndClient(status);
            }
        }
        if is_transport_failure(&status) {
            self.pool.report_failure(peer);
            let waiting = Waiting {
                connection: closed.connection,
                retry_at: Instant::now() + ERROR_RETRY,
            };
            self.awaiting_reconnect.insert(peer.to_owned(), waiting);
            // Whatever it answered before, its next answer is news.
            self.errored.remove(peer);
            return Failure::Report(node_event(NodeState::NodeUnavailable, peer, String::new()));
        }
        let message = status.message().to_owned();
        let previous = self.errored.insert(
            peer.to_owned(),
            Errored {
                retry_at: Instant::now() + ERROR_RETRY,
                message: message.clone(),
            },
        );
        if previous.is_some_and(|p| p.message == message) {
            return Failure::Repeated;
        }
        Failure::Report(node_event(NodeState::NodeError, peer, message))
    }

    /// Follows the pool: streams of peers that left the cluster or moved are closed,
    /// peers that are connected and not streaming are asked for new events only.
    /// Returns the node status events to report, in order.
    pub(super) fn reconcile(&mut self) -> Vec<NodeStatusEvent> {
        while self.tasks.try_join_next().is_some() {}
        let peers = self.pool.snapshot();
        let listed: HashMap<&str, &PeerView> = peers.iter().map(|p| (p.info.name.as_str(), p)).collect();
        self.active.retain(|name, active| {
            let keep = listed.get(name.as_str()).is_some_and(|peer| peer.info == active.info);
            if !keep {
                active.abort.abort();
            }
            keep
        });
        self.awaiting_reconnect
            .retain(|name, _| listed.contains_key(name.as_str()));
        self.errored.retain(|name, _| listed.contains_key(name.as_str()));
        let mut gone: Vec<String> = self
            .known
            .iter()
            .filter(|name| !listed.contains_key(name.as_str()))
            .cloned()
            .collect();
        self.known = listed.keys().map(|name| (*name).to_owned()).collect();
        let mut events = Vec::new();
        if !gone.is_empty() {
            gone.sort();
            events.push(NodeStatusEvent {
                state_change: NodeState::NodeGone.into(),
                node_names: gone,
                message: String::new(),
            });
        }

        let now = Instant::now();
        let mut joined = Vec::new();
        for peer in &peers {
            let name = &peer.info.name;
            let Some(connection) = peer.connection() else { continue };
            let waiting = self
                .awaiting_reconnect
                .get(name)
                .is_some_and(|w| w.connection == connection && w.retry_at > now);
            if self.active.contains_key(name) || waiting || self.errored.get(name).is_some_and(|e| e.retry_at > now) {
                continue;
            }
            self.awaiting_reconnect.remove(name);
            self.spawn_upstream(peer, M::live_only(&self.request));
            if !self.errored.contains_key(name) {
                joined.push(name.clone());
            }
        }
        if !joined.is_empty() {
            events.push(NodeStatusEvent {
                state_change: NodeState::NodeConnected.into(),
                node_names: joined,
                message: String::new(),
            });
        }
        events
    }
}

/// The opening node status: which peers the request found connected, and which not.
pub(super) fn initial_events(peers: &[PeerView]) -> Vec<NodeStatusEvent> {
    let (connected, unavailable): (Vec<_>, Vec<_>) = peers.iter().partition(|p| p.client().is_some());
    [
        (NodeState::NodeConnected, connected),
        (NodeState::NodeUnavailable, unavailable),
    ]
    .into_iter()
    .filter(|(_, group)| !group.is_empty())
    .map(|(state, group)| NodeStatusEvent {
        state_change: state.into(),
        node_names: group.iter().map(|p| p.info.name.clone()).collect(),
        message: String::new(),
    })
    .collect()
}

fn node_event(state: NodeState, peer: &str, message: String) -> NodeStatusEvent {
    NodeStatusEvent {
        state_change: state.into(),
        node_names: vec![peer.to_owned()],
        message,
    }
}

/// Failures that mean the peer itself is gone, as opposed to an error it answered
/// with. A status the peer sent has no source; one tonic made from a broken
/// connection (reset, h2 or hyper error, with codes from Unknown to Internal) keeps
/// the error it came from.
fn is_transport_failure(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted
    ) || std::error::Error::source(status).is_some()
}
