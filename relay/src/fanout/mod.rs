//! One client request fanned out to every connected peer and merged back by time.
//!
//! Unlike hubble-relay, `number` applies to the whole cluster: the last (or with
//! `first`, the first) N events of all nodes together, not N per node. In follow
//! mode, peers that appear or come back are picked up (asked for new events only,
//! so nothing is replayed), peers that fail are reported as node status events, and
//! peers removed from the cluster are dropped and reported as gone.
//! Dropping the client stream drops every upstream stream with it.

mod cut;
mod upstream;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sightline_proto::Timestamp;
use sightline_proto::relay::{NodeState, NodeStatusEvent};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};

use self::cut::cut;
use self::upstream::{Call, Upstream};
use crate::discovery::PeerInfo;
use crate::merge::{Merge, Window};
use crate::metrics::RelayMetrics;
use crate::pool::{PeerView, Pool};
use crate::sort_buffer::{Release, SortBuffer};

/// Batches of responses queued towards one client; a slower client backs up into
/// the upstream streams, whose agents then report what that client lost.
const CLIENT_QUEUE: usize = 8;
/// Most responses handed to the client's stream at once.
const CLIENT_BATCH: usize = 128;

/// The merged stream as the server hands it to tonic.
pub type ClientStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;
/// Batches queued from all upstream streams towards the merge.
const UPSTREAM_QUEUE: usize = 32;
/// Most upstream batches routed before the merge looks at anything else.
const UPSTREAM_BATCHES_AT_ONCE: usize = 128;
/// A peer that answered with an error is asked again no sooner than this (Hubble's
/// relay merges its repeated errors over the same window).
const ERROR_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct FanoutSettings {
    pub sort_buffer_len: usize,
    pub drain_timeout: Duration,
    pub relay_node: String,
    /// How often a follow stream looks for peers to add, besides pool changes.
    pub peer_refresh: Duration,
}

/// Where responses go before they reach the client, by request window.
enum Phase<M> {
    /// Non-follow with `number`: everything is gathered, then the window is cut.
    Collect(Vec<M>),
    /// Follow with `number`: history (older than the request) is gathered until
    /// every peer has moved past it, then its tail is sent and streaming starts.
    Gate {
        history: Vec<M>,
        live: Vec<M>,
        live_peers: HashSet<String>,
        quiet_since: Instant,
    },
    /// Everything else: straight through the sort buffer.
    Stream,
}

pub fn start<M: Merge>(
    pool: Pool,
    settings: Arc<FanoutSettings>,
    metrics: RelayMetrics,
    request: Request<M::Request>,
    shutdown: CancellationToken,
) -> ClientStream<M> {
    let (out, receiver) = mpsc::channel(CLIENT_QUEUE);
    let (metadata, _, message) = request.into_parts();
    let window = M::window(&message);
    let (upstream_tx, upstream_rx) = mpsc::channel(UPSTREAM_QUEUE);
    let fanout = Fanout {
        buffer: SortBuffer::new(settings.sort_buffer_len, settings.drain_timeout),
        pool,
        settings,
        metrics,
        metadata: forwardable(metadata),
        request: message,
        window,
        out,
        pending: Vec::with_capacity(CLIENT_BATCH),
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
        started: Timestamp::now(),
        arrival: Instant::now(),
    };
    tokio::spawn(fanout.run(upstream_rx, shutdown));
    Box::pin(Batches {
        receiver,
        current: Vec::new().into_iter(),
    })
}

/// The merge's batches, one response at a time, as tonic wants them.
struct Batches<T> {
    receiver: mpsc::Receiver<Vec<T>>,
    current: std::vec::IntoIter<T>,
}

// Items are moved out, never pinned in place, so `Batches` may move freely.
impl<T> Unpin for Batches<T> {}

impl<T> Stream for Batches<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<T>> {
        let this = self.get_mut();
        loop {
            if let Some(item) = this.current.next() {
                return std::task::Poll::Ready(Some(item));
            }
            match this.receiver.poll_recv(cx) {
                std::task::Poll::Ready(Some(batch)) => this.current = batch.into_iter(),
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(None),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            }
        }
    }
}

/// The client's metadata minus transport headers, passed on to the agents as Hubble does.
fn forwardable(metadata: MetadataMap) -> MetadataMap {
    let mut headers = metadata.into_headers();
    let transport: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("grpc-") || matches!(k.as_str(), "te" | "content-type" | "user-agent"))
        .cloned()
        .collect();
    for key in transport {
        headers.remove(key);
    }
    MetadataMap::from_headers(headers)
}

struct Fanout<M: Merge> {
    pool: Pool,
    settings: Arc<FanoutSettings>,
    metrics: RelayMetrics,
    metadata: MetadataMap,
    request: M::Request,
    window: Window,
    out: mpsc::Sender<Vec<Result<M, Status>>>,
    /// Responses not yet handed to the client's stream; sent when full and whenever
    /// the merge is about to wait.
    pending: Vec<Result<M, Status>>,
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
    started: Timestamp,
    buffer: SortBuffer<M>,
    /// When the responses being routed arrived. Read when a batch comes in and again
    /// after each wait for the client, the only place time passes while routing: a
    /// clock read per flow cost more than the rest of routing it.
    arrival: Instant,
}

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

/// The client's stream is over: the client went away, or it was sent its final status.
struct ClientGone;

impl<M: Merge> Fanout<M> {
    async fn run(mut self, mut upstream: mpsc::Receiver<Upstream<M>>, shutdown: CancellationToken) {
        let peers = self.pool.snapshot();
        self.known = peers.iter().map(|p| p.info.name.clone()).collect();
        if self.announce_initial(&peers).await.is_err() {
            return;
        }
        for peer in peers.iter().filter(|p| p.client().is_some()) {
            self.spawn_upstream(peer, self.request.clone());
        }
        self.initial_calls = self.calls;
        let mut phase = match self.window {
            Window {
                follow: false,
                number: 1..,
                ..
            } => Phase::Collect(Vec::new()),
            // With `since`, agents send everything after it and then follow: no cut.
            Window {
                follow: true,
                number: 1..,
                since: false,
                ..
            } => Phase::Gate {
                history: Vec::new(),
                live: Vec::new(),
                live_peers: HashSet::new(),
                quiet_since: Instant::now(),
            },
            _ => Phase::Stream,
        };
        let mut pool_changes = self.pool.subscribe();
        let mut refresh = tokio::time::interval(self.settings.peer_refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let mut batch = Vec::with_capacity(UPSTREAM_BATCHES_AT_ONCE);
        let result: Result<(), ClientGone> = async {
            loop {
                if !self.window.follow && self.active.is_empty() {
                    return self.finish(phase).await;
                }
                if self.gate_open(&phase) {
                    phase = self.open_gate(phase).await?;
                }
                self.flush().await?;
                let deadline = match &phase {
                    Phase::Gate { quiet_since, .. } => Some(*quiet_since + self.settings.drain_timeout),
                    Phase::Stream => self.buffer.next_deadline(),
                    Phase::Collect(_) => None,
                };
                tokio::select! {
                    () = self.out.closed() => return Err(ClientGone),
                    () = shutdown.cancelled() => {
                        self.pending.push(Err(Status::unavailable("relay is shutting down")));
                        let _ = self.flush().await;
                        return Err(ClientGone);
                    }
                    // Batches amortise the select over many responses when peers are busy.
                    received = upstream.recv_many(&mut batch, UPSTREAM_BATCHES_AT_ONCE) => {
                        if received == 0 {
                            return self.finish(phase).await;
                        }
                        for message in batch.drain(..) {
                            self.on_upstream(message, &mut phase).await?;
                        }
                    }
                    () = sleep_until(deadline) => {
                        if let Phase::Stream = phase {
                            for item in self.buffer.drain_expired(Instant::now()) {
                                self.emit(item, Some(Release::Timeout)).await?;
                            }
                        } else if let Phase::Gate { quiet_since, .. } = &mut phase {
                            // Nothing older arrived for a whole drain timeout: history is complete.
                            *quiet_since = Instant::now() - self.settings.drain_timeout;
                        }
                    }
                    _ = refresh.tick(), if self.window.follow => self.reconcile_peers(&mut phase).await?,
                    Ok(()) = pool_changes.changed(), if self.window.follow => self.reconcile_peers(&mut phase).await?,
                }
            }
        }
        .await;
        drop(result);
        // Dropping `self` aborts every upstream task, which cancels their RPCs.
    }

    async fn announce_initial(&mut self, peers: &[PeerView]) -> Result<(), ClientGone> {
        let (connected, unavailable): (Vec<_>, Vec<_>) = peers.iter().partition(|p| p.client().is_some());
        let now = Timestamp::now();
        for (state, group) in [
            (NodeState::NodeConnected, connected),
            (NodeState::NodeUnavailable, unavailable),
        ] {
            if group.is_empty() {
                continue;
            }
            let event = NodeStatusEvent {
                state_change: state.into(),
                node_names: group.iter().map(|p| p.info.name.clone()).collect(),
                message: String::new(),
            };
            if let Some(status) = M::node_status(event, &self.settings.relay_node, now) {
                self.pending.push(Ok(status));
            }
        }
        Ok(())
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
            idle_timeout: (!self.window.follow).then_some(answer_timeout),
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

    async fn on_upstream(&mut self, message: Upstream<M>, phase: &mut Phase<M>) -> Result<(), ClientGone> {
        self.arrival = Instant::now();
        match message {
            Upstream::Items(peer, call, items) => {
                if !self.is_open(&peer, call) {
                    // What a peer that left or moved still had in flight.
                    return Ok(());
                }
                self.delivered = true;
                if !self.errored.is_empty() {
                    // It answers again: a later error is news.
                    self.errored.remove(&*peer);
                }
                for item in items {
                    self.route(Some(&peer), item, phase).await?;
                }
                Ok(())
            }
            Upstream::Ended(peer, call) => {
                self.close(&peer, call);
                Ok(())
            }
            Upstream::Failed(peer, call, status) => {
                let Some(closed) = self.close(&peer, call) else {
                    return Ok(());
                };
                tracing::info!(%peer, code = ?status.code(), message = status.message(), "peer stream ended with an error");
                if status.code() == Code::InvalidArgument && call < self.initial_calls {
                    self.rejected_as_invalid += 1;
                    if self.rejected_as_invalid == self.initial_calls && !self.delivered {
                        // Every node refused the request itself: that is the client's
                        // answer, not a node's state (hubble-relay reports NODE_ERROR
                        // per node, every 10 s while following).
                        self.pending.push(Err(status));
                        let _ = self.flush().await;
                        return Err(ClientGone);
                    }
                }
                let event = if is_transport_failure(&status) {
                    self.pool.report_failure(&peer);
                    let waiting = Waiting {
                        connection: closed.connection,
                        retry_at: Instant::now() + ERROR_RETRY,
                    };
                    self.awaiting_reconnect.insert(peer.to_string(), waiting);
                    // Whatever it answered before, its next answer is news.
                    self.errored.remove(&*peer);
                    node_event(NodeState::NodeUnavailable, &peer, String::new())
                } else {
                    let retry_at = Instant::now() + ERROR_RETRY;
                    let message = status.message().to_owned();
                    let previous = self.errored.insert(
                        peer.to_string(),
                        Errored {
                            retry_at,
                            message: message.clone(),
                        },
                    );
                    if previous.is_some_and(|p| p.message == message) {
                        return Ok(());
                    }
                    node_event(NodeState::NodeError, &peer, message)
                };
                self.route_node_status(event, phase).await
            }
        }
    }

    async fn route_node_status(&mut self, event: NodeStatusEvent, phase: &mut Phase<M>) -> Result<(), ClientGone> {
        match M::node_status(event, &self.settings.relay_node, Timestamp::now()) {
            Some(status) => self.route(None, status, phase).await,
            None => Ok(()),
        }
    }

    /// Sends `item` on its way according to the phase.
    async fn route(&mut self, peer: Option<&str>, item: M, phase: &mut Phase<M>) -> Result<(), ClientGone> {
        let now = self.arrival;
        match phase {
            Phase::Collect(items) => items.push(item),
            Phase::Gate {
                history,
                live,
                live_peers,
                quiet_since,
            } => {
                if item.time_nanos() <= self.started.as_unix_nanos() && item.counts() {
                    history.push(item);
                    *quiet_since = now;
                } else {
                    if let Some(peer) = peer {
                        live_peers.insert(peer.to_owned());
                    }
                    live.push(item);
                }
            }
            Phase::Stream => {
                if let Some(released) = self.buffer.push(item, now) {
                    self.emit(released, Some(Release::Full)).await?;
                }
            }
        }
        Ok(())
    }

    fn gate_open(&self, phase: &Phase<M>) -> bool {
        let Phase::Gate {
            live_peers,
            quiet_since,
            ..
        } = phase
        else {
            return false;
        };
        self.active.keys().all(|peer| live_peers.contains(peer)) || quiet_since.elapsed() >= self.settings.drain_timeout
    }

    async fn open_gate(&mut self, phase: Phase<M>) -> Result<Phase<M>, ClientGone> {
        let Phase::Gate { history, live, .. } = phase else {
            return Ok(phase);
        };
        self.arrival = Instant::now();
        for item in cut(history, self.window.number, false) {
            self.emit(item, None).await?;
        }
        let mut stream = Phase::Stream;
        for item in live {
            self.route(None, item, &mut stream).await?;
        }
        Ok(stream)
    }

    async fn finish(&mut self, phase: Phase<M>) -> Result<(), ClientGone> {
        let (items, from_buffer) = match phase {
            Phase::Collect(items) => (cut(items, self.window.number, self.window.keeps_oldest()), false),
            Phase::Gate { history, live, .. } => {
                let mut items = cut(history, self.window.number, false);
                items.extend(live);
                (items, false)
            }
            Phase::Stream => (self.buffer.drain_all(), true),
        };
        let why = from_buffer.then_some(Release::Flush);
        for item in items {
            self.emit(item, why).await?;
        }
        self.flush().await
    }

    /// Queues `item` for the client; `why` it left the sort buffer, if it was in it.
    async fn emit(&mut self, item: M, why: Option<Release>) -> Result<(), ClientGone> {
        if let Some(why) = why {
            self.metrics.released(why);
        }
        if item.counts() {
            self.metrics.flow_forwarded();
        }
        self.pending.push(Ok(item));
        if self.pending.len() >= CLIENT_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ClientGone> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(CLIENT_BATCH));
        self.out.send(batch).await.map_err(|_| ClientGone)?;
        // A slow client may have held us up here; later stamps must not predate it.
        self.arrival = Instant::now();
        Ok(())
    }

    /// Follows the pool: streams of peers that left the cluster or moved are closed,
    /// peers that are connected and not streaming are asked for new events.
    async fn reconcile_peers(&mut self, phase: &mut Phase<M>) -> Result<(), ClientGone> {
        self.arrival = Instant::now();
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
        if !gone.is_empty() {
            gone.sort();
            let event = NodeStatusEvent {
                state_change: NodeState::NodeGone.into(),
                node_names: gone,
                message: String::new(),
            };
            self.route_node_status(event, phase).await?;
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
        if joined.is_empty() {
            return Ok(());
        }
        let event = NodeStatusEvent {
            state_change: NodeState::NodeConnected.into(),
            node_names: joined,
            message: String::new(),
        };
        self.route_node_status(event, phase).await
    }
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

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
