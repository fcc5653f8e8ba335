//! One client request fanned out to every connected peer and merged back by time.
//!
//! Unlike hubble-relay, `number` applies to the whole cluster: the last (or with
//! `first`, the first) N events of all nodes together, not N per node. In follow
//! mode, peers that appear or come back are picked up (asked for new events only,
//! so nothing is replayed), peers that fail are reported as node status events, and
//! peers removed from the cluster are dropped and reported as gone.
//! Dropping the client stream drops every upstream stream with it.
//!
//! Three parts, one file each: [`peers`] tracks the peers' streams, [`phase`]
//! holds responses as the request's window requires, [`sink`] hands them to the
//! client; this file runs the loop that joins them.

mod batch;
mod cut;
mod peers;
mod phase;
mod sink;
mod upstream;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use sightline_proto::Timestamp;
use sightline_proto::relay::NodeStatusEvent;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use self::peers::{Failure, PeerStreams};
use self::phase::Merging;
use self::sink::{ClientGone, ClientSink, client_sink};
use self::upstream::Upstream;
use crate::merge::Merge;
use crate::metrics::RelayMetrics;
use crate::pool::Pool;

/// The merged stream as the server hands it to tonic.
pub type ClientStream<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;
/// Batches queued from all upstream streams towards the merge.
const UPSTREAM_QUEUE: usize = 32;
/// Most upstream batches routed before the merge looks at anything else.
const UPSTREAM_BATCHES_AT_ONCE: usize = 128;

#[derive(Debug, Clone)]
/// How a merged stream is run; taken once when the stream starts.
pub struct FanoutSettings {
    /// How many events the merge holds back to order by time.
    pub sort_buffer_len: usize,
    /// How long an event may wait in the sort buffer for older ones.
    pub drain_timeout: Duration,
    /// The name the relay's own node status events carry.
    pub relay_node: String,
    /// How often a follow stream looks for peers to add, besides pool changes.
    pub peer_refresh: Duration,
}

/// Starts one client stream: calls every connected peer and merges their answers by time.
pub fn start<M: Merge>(
    pool: Pool,
    settings: Arc<FanoutSettings>,
    metrics: RelayMetrics,
    request: Request<M::Request>,
    shutdown: CancellationToken,
) -> ClientStream<M> {
    let (metadata, _, message) = request.into_parts();
    let window = M::window(&message);
    let (upstream_tx, upstream_rx) = mpsc::channel(UPSTREAM_QUEUE);
    let (sink, batches) = client_sink(metrics);
    let fanout = Fanout {
        merging: Merging::new(window, settings.sort_buffer_len, settings.drain_timeout),
        peers: PeerStreams::new(pool.clone(), forwardable(metadata), message, window.follow, upstream_tx),
        pool,
        settings,
        follow: window.follow,
        sink,
    };
    tokio::spawn(fanout.run(upstream_rx, shutdown));
    Box::pin(batches)
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
    follow: bool,
    peers: PeerStreams<M>,
    merging: Merging<M>,
    sink: ClientSink<M>,
}

impl<M: Merge> Fanout<M> {
    async fn run(mut self, mut upstream: mpsc::Receiver<Upstream<M>>, shutdown: CancellationToken) {
        let peers = self.pool.snapshot();
        let now = Timestamp::now();
        for event in peers::initial_events(&peers) {
            if let Some(status) = M::node_status(event, &self.settings.relay_node, now) {
                self.sink.push(status);
            }
        }
        self.peers.open_initial(&peers);
        let mut pool_changes = self.pool.subscribe();
        let mut refresh = tokio::time::interval(self.settings.peer_refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let mut batch = Vec::with_capacity(UPSTREAM_BATCHES_AT_ONCE);
        let result: Result<(), ClientGone> = async {
            loop {
                if !self.follow && self.peers.none_streaming() {
                    return self.merging.finish(&mut self.sink).await;
                }
                if self.merging.gate_ready(self.peers.streaming()) {
                    self.merging.open_gate(&mut self.sink).await?;
                }
                self.sink.flush().await?;
                let deadline = self.merging.deadline();
                tokio::select! {
                    () = self.sink.closed() => return Err(ClientGone),
                    () = shutdown.cancelled() => {
                        return Err(self.sink.fail(Status::unavailable("relay is shutting down")).await);
                    }
                    // Batches amortise the select over many responses when peers are busy.
                    received = upstream.recv_many(&mut batch, UPSTREAM_BATCHES_AT_ONCE) => {
                        if received == 0 {
                            return self.merging.finish(&mut self.sink).await;
                        }
                        for message in batch.drain(..) {
                            self.on_upstream(message).await?;
                        }
                    }
                    () = sleep_until(deadline) => self.merging.on_deadline(&mut self.sink).await?,
                    _ = refresh.tick(), if self.follow => self.reconcile_peers().await?,
                    Ok(()) = pool_changes.changed(), if self.follow => self.reconcile_peers().await?,
                }
            }
        }
        .await;
        drop(result);
        // Dropping `self` aborts every upstream task, which cancels their RPCs.
    }

    async fn on_upstream(&mut self, message: Upstream<M>) -> Result<(), ClientGone> {
        self.sink.stamp_arrival();
        match message {
            Upstream::Items(peer, call, items) => {
                if !self.peers.delivered(&peer, call) {
                    return Ok(());
                }
                for item in items {
                    self.merging.route(Some(&peer), item, &mut self.sink).await?;
                }
                Ok(())
            }
            Upstream::Ended(peer, call) => {
                self.peers.ended(&peer, call);
                Ok(())
            }
            Upstream::Failed(peer, call, status) => match self.peers.failed(&peer, call, status) {
                Failure::Stale | Failure::Repeated => Ok(()),
                Failure::Report(event) => self.route_node_status(event).await,
                Failure::EndClient(status) => Err(self.sink.fail(status).await),
            },
        }
    }

    async fn route_node_status(&mut self, event: NodeStatusEvent) -> Result<(), ClientGone> {
        match M::node_status(event, &self.settings.relay_node, Timestamp::now()) {
            Some(status) => self.merging.route(None, status, &mut self.sink).await,
            None => Ok(()),
        }
    }

    async fn reconcile_peers(&mut self) -> Result<(), ClientGone> {
        self.sink.stamp_arrival();
        for event in self.peers.reconcile() {
            self.route_node_status(event).await?;
        }
        Ok(())
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
