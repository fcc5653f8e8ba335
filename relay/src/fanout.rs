//! One client request fanned out to every connected peer and merged back by time.
//!
//! Unlike hubble-relay, `number` applies to the whole cluster: the last (or with
//! `first`, the first) N events of all nodes together, not N per node. In follow
//! mode, peers that appear or come back are picked up (asked for new events only,
//! so nothing is replayed), and peers that fail are reported as node status events.
//! Dropping the client stream drops every upstream stream with it.

use std::collections::{BTreeSet, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use sightline_proto::Timestamp;
use sightline_proto::relay::{NodeState, NodeStatusEvent};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};

use crate::merge::{Merge, Window};
use crate::metrics::RelayMetrics;
use crate::pool::{PeerState, PeerView, Pool};
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
/// Most responses of one peer handed over at once.
const UPSTREAM_BATCH: usize = 128;

#[derive(Debug, Clone)]
pub struct FanoutSettings {
    pub sort_buffer_len: usize,
    pub drain_timeout: Duration,
    pub relay_node: String,
    /// How often a follow stream looks for peers to add, besides pool changes.
    pub peer_refresh: Duration,
}

/// What upstream tasks report. Responses come in batches of whatever one peer's
/// stream had ready, so a busy stream costs one channel send per batch, not per flow.
enum Upstream<M> {
    Items(Arc<str>, Vec<M>),
    Ended(Arc<str>),
    Failed(Arc<str>, Status),
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
        active: BTreeSet::new(),
        awaiting_reconnect: HashSet::new(),
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

/// Cuts `number` counted events off the sorted `items`: the first ones with `first`,
/// else the last ones. Uncounted events (lost events, node status) inside the cut stay.
fn cut<M: Merge>(mut items: Vec<M>, number: u64, first: bool) -> Vec<M> {
    items.sort_by_key(|item| item.time_nanos());
    let number = usize::try_from(number).unwrap_or(usize::MAX);
    if first {
        let mut counted = 0;
        let end = items.iter().position(|item| {
            if counted == number {
                return true;
            }
            counted += usize::from(item.counts());
            false
        });
        items.truncate(end.unwrap_or(items.len()));
    } else {
        let mut counted = 0;
        let mut start = items.len();
        while start > 0 && counted < number {
            start -= 1;
            counted += usize::from(items[start].counts());
        }
        items.drain(..start);
    }
    items
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
    active: BTreeSet<String>,
    /// Peers whose stream failed; they rejoin once the pool saw them drop and come back.
    awaiting_reconnect: HashSet<String>,
    started: Timestamp,
    buffer: SortBuffer<M>,
    /// When the responses being routed arrived. Read when a batch comes in and again
    /// after each wait for the client, the only place time passes while routing: a
    /// clock read per flow cost more than the rest of routing it.
    arrival: Instant,
}

/// The client went away; stop everything.
struct ClientGone;

impl<M: Merge> Fanout<M> {
    async fn run(mut self, mut upstream: mpsc::Receiver<Upstream<M>>, shutdown: CancellationToken) {
        let peers = self.pool.snapshot();
        if self.announce_initial(&peers).await.is_err() {
            return;
        }
        for peer in peers.iter().filter(|p| p.client().is_some()) {
            self.spawn_upstream(peer, self.request.clone());
        }
        let mut phase = match (self.window.follow, self.window.number) {
            (false, n) if n > 0 => Phase::Collect(Vec::new()),
            (true, n) if n > 0 => Phase::Gate {
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

        let mut batch = Vec::with_capacity(UPSTREAM_BATCH);
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
                    received = upstream.recv_many(&mut batch, UPSTREAM_BATCH) => {
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
                                self.emit(item, Release::Timeout).await?;
                            }
                        } else if let Phase::Gate { quiet_since, .. } = &mut phase {
                            // Nothing older arrived for a whole drain timeout: history is complete.
                            *quiet_since = Instant::now() - self.settings.drain_timeout;
                        }
                    }
                    _ = refresh.tick(), if self.window.follow => self.join_new_peers(&mut phase).await?,
                    Ok(()) = pool_changes.changed(), if self.window.follow => self.join_new_peers(&mut phase).await?,
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
        let Some(channel) = peer.channel() else { return };
        let name: Arc<str> = peer.info.name.as_str().into();
        self.active.insert(peer.info.name.clone());
        let tx = self.upstream_tx.clone();
        let request = Request::from_parts(self.metadata.clone(), Default::default(), request);
        let timeout = self.pool.dial_timeout();
        self.tasks.spawn(async move {
            let stream = match tokio::time::timeout(timeout, M::call(channel, request)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(status)) => {
                    let _ = tx.send(Upstream::Failed(name, status)).await;
                    return;
                }
                Err(_) => {
                    let status = Status::unavailable(format!("no response within {timeout:?}"));
                    let _ = tx.send(Upstream::Failed(name, status)).await;
                    return;
                }
            };
            let mut batches = stream.ready_chunks(UPSTREAM_BATCH);
            loop {
                let Some(batch) = batches.next().await else {
                    let _ = tx.send(Upstream::Ended(name)).await;
                    return;
                };
                let mut items = Vec::with_capacity(batch.len());
                let mut failure = None;
                for result in batch {
                    match result {
                        Ok(item) => items.push(item),
                        Err(status) => {
                            failure = Some(status);
                            break;
                        }
                    }
                }
                if !items.is_empty() && tx.send(Upstream::Items(name.clone(), items)).await.is_err() {
                    return;
                }
                if let Some(status) = failure {
                    let _ = tx.send(Upstream::Failed(name, status)).await;
                    return;
                }
            }
        });
    }

    async fn on_upstream(&mut self, message: Upstream<M>, phase: &mut Phase<M>) -> Result<(), ClientGone> {
        self.arrival = Instant::now();
        match message {
            Upstream::Items(peer, items) => {
                for item in items {
                    self.route(Some(&peer), item, phase).await?;
                }
                Ok(())
            }
            Upstream::Ended(peer) => {
                self.active.remove(&*peer);
                Ok(())
            }
            Upstream::Failed(peer, status) => {
                self.active.remove(&*peer);
                let (state, message) = if is_transport_failure(&status) {
                    self.pool.report_failure(&peer);
                    self.awaiting_reconnect.insert(peer.to_string());
                    (NodeState::NodeUnavailable, String::new())
                } else {
                    (NodeState::NodeError, status.message().to_owned())
                };
                tracing::info!(%peer, code = ?status.code(), message = status.message(), "peer stream ended with an error");
                let event = NodeStatusEvent {
                    state_change: state.into(),
                    node_names: vec![peer.to_string()],
                    message,
                };
                match M::node_status(event, &self.settings.relay_node, Timestamp::now()) {
                    Some(status) => self.route(None, status, phase).await,
                    None => Ok(()),
                }
            }
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
                    self.emit(released, Release::Full).await?;
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
        self.active.iter().all(|peer| live_peers.contains(peer)) || quiet_since.elapsed() >= self.settings.drain_timeout
    }

    async fn open_gate(&mut self, phase: Phase<M>) -> Result<Phase<M>, ClientGone> {
        let Phase::Gate { history, live, .. } = phase else {
            return Ok(phase);
        };
        self.arrival = Instant::now();
        for item in cut(history, self.window.number, false) {
            self.emit(item, Release::Flush).await?;
        }
        let mut stream = Phase::Stream;
        for item in live {
            self.route(None, item, &mut stream).await?;
        }
        Ok(stream)
    }

    async fn finish(&mut self, phase: Phase<M>) -> Result<(), ClientGone> {
        let items = match phase {
            Phase::Collect(items) => cut(items, self.window.number, self.window.first),
            Phase::Gate { history, live, .. } => {
                let mut items = cut(history, self.window.number, false);
                items.extend(live);
                items
            }
            Phase::Stream => self.buffer.drain_all(),
        };
        for item in items {
            self.emit(item, Release::Flush).await?;
        }
        self.flush().await
    }

    async fn emit(&mut self, item: M, why: Release) -> Result<(), ClientGone> {
        self.metrics.released(why);
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

    async fn join_new_peers(&mut self, phase: &mut Phase<M>) -> Result<(), ClientGone> {
        self.arrival = Instant::now();
        let mut joined = Vec::new();
        for peer in self.pool.snapshot() {
            let name = &peer.info.name;
            if !matches!(peer.state, PeerState::Connected { .. }) {
                self.awaiting_reconnect.remove(name);
                continue;
            }
            if self.active.contains(name) || self.awaiting_reconnect.contains(name) {
                continue;
            }
            self.spawn_upstream(&peer, M::live_only(&self.request));
            joined.push(name.clone());
        }
        if joined.is_empty() {
            return Ok(());
        }
        let event = NodeStatusEvent {
            state_change: NodeState::NodeConnected.into(),
            node_names: joined,
            message: String::new(),
        };
        match M::node_status(event, &self.settings.relay_node, Timestamp::now()) {
            Some(status) => self.route(None, status, phase).await,
            None => Ok(()),
        }
    }
}

/// Failures that mean the peer itself is gone, as opposed to an error it answered with.
fn is_transport_failure(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Aborted
    ) || (status.code() == Code::Unknown && status.message().contains("transport"))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_proto::flow::{Flow, LostEvent};
    use sightline_proto::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};

    fn flow(t: i64) -> GetFlowsResponse {
        let time = Timestamp { seconds: t, nanos: 0 };
        GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(Flow {
                time: Some(time),
                ..Default::default()
            })),
            node_name: String::new(),
            time: Some(time),
        }
    }

    fn lost(t: i64) -> GetFlowsResponse {
        GetFlowsResponse {
            response_types: Some(ResponseTypes::LostEvents(LostEvent::default())),
            node_name: String::new(),
            time: Some(Timestamp { seconds: t, nanos: 0 }),
        }
    }

    fn seconds(items: &[GetFlowsResponse]) -> Vec<i64> {
        items.iter().map(|i| i.time.map_or(0, |t| t.seconds)).collect()
    }

    #[test]
    fn last_n_is_cluster_wide_and_skips_uncounted_events_when_counting() {
        let items = vec![flow(5), flow(1), lost(4), flow(3), flow(2)];
        assert_eq!(seconds(&cut(items, 2, false)), [3, 4, 5]);
    }

    #[test]
    fn first_n_stops_after_the_nth_counted_event() {
        let items = vec![flow(5), flow(1), lost(2), flow(3), flow(4)];
        assert_eq!(seconds(&cut(items, 2, true)), [1, 2, 3]);
    }

    #[test]
    fn cut_with_more_than_available_keeps_everything_sorted() {
        assert_eq!(seconds(&cut(vec![flow(2), flow(1)], 10, false)), [1, 2]);
        assert_eq!(seconds(&cut(vec![flow(2), flow(1)], 10, true)), [1, 2]);
    }
}
