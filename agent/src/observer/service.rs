//! `observer.Observer` over the ring.
//!
//! Every validation error is `InvalidArgument` naming the field and value (Hubble
//! answers `Unknown` for most of them). Streams are plain futures over a cursor: no
//! task or buffer per client, so a slow client only holds its own position (and
//! learns about what it missed as LostEvents) and a cancelled one frees everything
//! when tonic drops the stream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::Stream;
use sightline_proto::Timestamp;
use sightline_proto::flow::{LostEvent, LostEventSource};
use sightline_proto::observer::observer_server::Observer;
use sightline_proto::observer::{
    GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse, GetFlowsRequest,
    GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest, GetNodesResponse, Node,
    ServerStatusRequest, ServerStatusResponse, Tls, get_flows_response::ResponseTypes,
};
use sightline_proto::relay::NodeState;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::codec::FlowsItem;
use super::cursor::{Cursor, Item, Kind, Query};
use super::fieldmask::FlowMask;
use super::filter::FilterSet;
use super::ring::Ring;
use super::sink::ObserverStats;
use crate::event::Event;
use crate::peer::PeerSet;

/// `sightline v<semver>` in ServerStatus, the bare semver in the response header.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Response header carrying the bare semver, under Hubble's name for it.
const VERSION_HEADER: &str = "hubble-server-version";

/// This agent as other components see it.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The Kubernetes node name (`--node-name`), without the cluster prefix.
    pub node_name: String,
    /// `--cluster-name`; empty or `default` leaves node names in responses unprefixed.
    pub cluster_name: String,
    /// Where a client dials this agent (`host:port`, or `unix://path`) when the
    /// announced peers do not say (see [`ObserverService::announced_in`]).
    pub address: String,
    /// The TLS server name, when the TCP listener serves TLS.
    pub tls_server_name: Option<String>,
}

impl NodeIdentity {
    /// `<cluster>/<node>` unless the cluster is empty or `default`.
    pub fn absolute_name(&self) -> String {
        sightline_common::names::absolute_node_name(&self.cluster_name, &self.node_name)
    }
}

/// The `observer.Observer` gRPC service over one ring: GetFlows, GetAgentEvents,
/// GetDebugEvents, GetNodes, GetNamespaces and ServerStatus.
#[derive(Clone)]
pub struct ObserverService {
    ring: Ring,
    stats: Arc<ObserverStats>,
    node: NodeIdentity,
    absolute_name: Arc<str>,
    started: Instant,
    lost_interval: Duration,
    /// What `peer.Peer` announces; this node's entry, if any, gives its address.
    peers: Option<watch::Receiver<PeerSet>>,
    /// `hubble_lost_events_total{source="hubble_ring_buffer"}`: events a reader missed
    /// because the writer overtook it, counted as Hubble's ring reader counts them.
    ring_losses: Option<prometheus_client::metrics::counter::Counter>,
}

impl ObserverService {
    /// A cursor over agent or debug events: they take no filters.
    fn event_cursor(&self, kind: Kind, common: Common) -> Result<Cursor, Status> {
        Ok(Cursor::new(
            self.ring.clone(),
            query(kind, common, FilterSet::default())?,
            self.lost_interval,
        ))
    }

    /// Serves `ring` as `node`; `stats` answer ServerStatus (seen flows, flow rate) and
    /// GetNamespaces, and `lost_interval` is how long a follow stream gathers ring
    /// losses before reporting them.
    pub fn new(ring: Ring, stats: Arc<ObserverStats>, node: NodeIdentity, lost_interval: Duration) -> Self {
        let absolute_name = node.absolute_name().into();
        Self {
            ring,
            stats,
            node,
            absolute_name,
            started: Instant::now(),
            lost_interval,
            peers: None,
            ring_losses: None,
        }
    }

    /// Counts what readers of every kind miss to the writer in `lost`, under
    /// Hubble's `source="hubble_ring_buffer"`.
    pub(crate) fn counting_ring_losses_in(mut self, lost: &crate::metrics::runtime::LostEvents) -> Self {
        let labels = vec![("source", "hubble_ring_buffer".to_owned())];
        self.ring_losses = Some(lost.get_or_create(&labels).clone());
        self
    }

    fn count_ring_loss(&self, count: u64) {
        if let Some(counter) = &self.ring_losses {
            counter.inc_by(count);
        }
    }

    /// Reports this node's address as `peers` announce it, so GetNodes and
    /// peer.Peer/Notify agree; `NodeIdentity::address` is the fallback.
    pub fn announced_in(mut self, peers: watch::Receiver<PeerSet>) -> Self {
        self.peers = Some(peers);
        self
    }

    fn dial_address(&self) -> String {
        let announced = self.peers.as_ref().and_then(|peers| {
            let peers = peers.borrow();
            peers
                .get(&*self.absolute_name)
                .map(|peer| peer.address.clone())
                .filter(|address| !address.is_empty())
        });
        announced.unwrap_or_else(|| self.node.address.clone())
    }
}

fn with_version<T>(message: T) -> Response<T> {
    let mut response = Response::new(message);
    response
        .metadata_mut()
        .insert(VERSION_HEADER, tonic::metadata::MetadataValue::from_static(VERSION));
    response
}

fn invalid(field: &str, value: impl std::fmt::Display, reason: &str) -> Status {
    Status::invalid_argument(format!("invalid {field}={value}: {reason}"))
}

/// google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z up to
/// 9999-12-31T23:59:59Z, what Hubble's `CheckValid` accepts.
const MIN_TIMESTAMP_SECONDS: i64 = -62_135_596_800;
const MAX_TIMESTAMP_SECONDS: i64 = 253_402_300_799;

fn check_time(field: &str, ts: Option<Timestamp>) -> Result<Option<Timestamp>, Status> {
    match ts {
        Some(t) if !(MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&t.seconds) => Err(invalid(
            field,
            format!("{t:?}"),
            &format!("seconds out of range [{MIN_TIMESTAMP_SECONDS}, {MAX_TIMESTAMP_SECONDS}]"),
        )),
        Some(t) if !(0..1_000_000_000).contains(&t.nanos) => {
            Err(invalid(field, format!("{t:?}"), "nanos out of range [0, 999999999]"))
        }
        other => Ok(other),
    }
}

struct Common {
    number: u64,
    first: bool,
    follow: bool,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
}

fn query(kind: Kind, c: Common, filters: FilterSet) -> Result<Query, Status> {
    if c.first && c.follow {
        return Err(invalid("first", "true", "first cannot be specified with follow"));
    }
    Ok(Query {
        kind,
        number: c.number,
        first: c.first,
        follow: c.follow,
        since: check_time("since", c.since)?,
        until: check_time("until", c.until)?,
        filters,
    })
}

/// The response stream of every server-streaming Observer RPC.
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn stream<T: Send + 'static>(cursor: Cursor, convert: impl FnMut(Item) -> Option<T> + Send + 'static) -> BoxStream<T> {
    // `unfold` moves its state into a new future for every item; boxed, that is one
    // pointer instead of the cursor and its compiled filters (a memcpy per flow that
    // profiled at ~9 % of a GetFlows stream's CPU).
    Box::pin(futures_util::stream::unfold(
        Box::new((cursor, convert)),
        |mut state| async move {
            loop {
                let (cursor, convert) = &mut *state;
                let item = cursor.next().await?;
                if let Some(response) = convert(item) {
                    return Some((Ok(response), state));
                }
            }
        },
    ))
}

impl ObserverService {
    /// GetFlows as [`FlowsItem`]s: unmasked flows are sent straight from the ring.
    pub fn flows(&self, request: Request<GetFlowsRequest>) -> Result<Response<BoxStream<FlowsItem>>, Status> {
        let r = request.into_inner();
        let filters = FilterSet::compile(&r.whitelist, &r.blacklist)
            .map_err(|e| Status::invalid_argument(format!("invalid filter {}={:?}: {}", e.field, e.value, e.reason)))?;
        let mask = FlowMask::compile(r.field_mask.as_ref().map_or(&[][..], |m| &m.paths))
            .map_err(|e| Status::invalid_argument(format!("invalid field_mask: {e}")))?;
        let common = Common {
            number: r.number,
            first: r.first,
            follow: r.follow,
            since: r.since,
            until: r.until,
        };
        let query = query(Kind::Flows, common, filters)?;
        let cursor = Cursor::new(self.ring.clone(), query, self.lost_interval);
        let this = self.clone();
        let convert = move |item| {
            Some(match item {
                Item::Event(event) => match event.event() {
                    Event::Flow(_) if mask.is_empty() => FlowsItem::Shared(event),
                    Event::Flow(flow) => FlowsItem::Owned(Box::new(GetFlowsResponse {
                        node_name: flow.node_name().to_owned(),
                        time: flow.time,
                        response_types: Some(ResponseTypes::Flow(mask.apply(&flow.complete()))),
                    })),
                    Event::Lost { time, event } => FlowsItem::Owned(Box::new(GetFlowsResponse {
                        node_name: this.absolute_name.to_string(),
                        time: Some(*time),
                        response_types: Some(ResponseTypes::LostEvents(**event)),
                    })),
                    _ => return None,
                },
                Item::RingLost { count, first, last } => FlowsItem::Owned(Box::new(GetFlowsResponse {
                    node_name: this.absolute_name.to_string(),
                    time: Some(Timestamp::now()),
                    response_types: Some(ResponseTypes::LostEvents(this.ring_lost(count, first, last))),
                })),
            })
        };
        Ok(with_version(stream(cursor, convert)))
    }

    fn ring_lost(&self, count: u64, first: Timestamp, last: Timestamp) -> LostEvent {
        self.count_ring_loss(count);
        LostEvent {
            source: LostEventSource::HubbleRingBuffer as i32,
            num_events_lost: count,
            cpu: None,
            first: Some(first),
            last: Some(last),
        }
    }
}

#[tonic::async_trait]
impl Observer for ObserverService {
    type GetFlowsStream = BoxStream<GetFlowsResponse>;
    type GetAgentEventsStream = BoxStream<GetAgentEventsResponse>;
    type GetDebugEventsStream = BoxStream<GetDebugEventsResponse>;

    async fn get_flows(&self, request: Request<GetFlowsRequest>) -> Result<Response<Self::GetFlowsStream>, Status> {
        let response = self.flows(request)?;
        let (metadata, stream, extensions) = response.into_parts();
        let stream: Self::GetFlowsStream = Box::pin(futures_util::StreamExt::map(stream, |item| {
            item.map(FlowsItem::into_response)
        }));
        Ok(Response::from_parts(metadata, stream, extensions))
    }

    async fn get_agent_events(
        &self,
        request: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        let r = request.into_inner();
        let cursor = self.event_cursor(
            Kind::Agent,
            Common {
                number: r.number,
                first: r.first,
                follow: r.follow,
                since: r.since,
                until: r.until,
            },
        )?;
        let node_name = self.absolute_name.clone();
        let this = self.clone();
        Ok(with_version(stream(cursor, move |item| match item {
            Item::Event(event) => match event.event() {
                Event::Agent { time, event } => Some(GetAgentEventsResponse {
                    agent_event: Some((**event).clone()),
                    node_name: node_name.to_string(),
                    time: Some(*time),
                }),
                _ => None,
            },
            // The response has no field for losses; the metric still counts them.
            Item::RingLost { count, .. } => {
                this.count_ring_loss(count);
                None
            }
        })))
    }

    async fn get_debug_events(
        &self,
        request: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        let r = request.into_inner();
        let cursor = self.event_cursor(
            Kind::Debug,
            Common {
                number: r.number,
                first: r.first,
                follow: r.follow,
                since: r.since,
                until: r.until,
            },
        )?;
        let node_name = self.absolute_name.clone();
        let this = self.clone();
        Ok(with_version(stream(cursor, move |item| match item {
            Item::Event(event) => match event.event() {
                Event::Debug { time, event } => Some(GetDebugEventsResponse {
                    debug_event: Some((**event).clone()),
                    node_name: node_name.to_string(),
                    time: Some(*time),
                }),
                _ => None,
            },
            Item::RingLost { count, .. } => {
                this.count_ring_loss(count);
                None
            }
        })))
    }

    async fn get_nodes(&self, _request: Request<GetNodesRequest>) -> Result<Response<GetNodesResponse>, Status> {
        let node = Node {
            name: self.absolute_name.to_string(),
            version: VERSION.to_owned(),
            address: self.dial_address(),
            state: NodeState::NodeConnected as i32,
            tls: Some(Tls {
                enabled: self.node.tls_server_name.is_some(),
                server_name: self.node.tls_server_name.clone().unwrap_or_default(),
            }),
            uptime_ns: u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            num_flows: self.ring.len(),
            max_flows: self.ring.capacity(),
            seen_flows: self.stats.seen_flows.load(Ordering::Relaxed),
        };
        Ok(with_version(GetNodesResponse { nodes: vec![node] }))
    }

    async fn get_namespaces(
        &self,
        _request: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        Ok(with_version(GetNamespacesResponse {
            namespaces: self.stats.namespaces.list(),
        }))
    }

    async fn server_status(
        &self,
        _request: Request<ServerStatusRequest>,
    ) -> Result<Response<ServerStatusResponse>, Status> {
        Ok(with_version(ServerStatusResponse {
            num_flows: self.ring.len(),
            max_flows: self.ring.capacity(),
            seen_flows: self.stats.seen_flows.load(Ordering::Relaxed),
            uptime_ns: u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            num_connected_nodes: None,
            num_unavailable_nodes: None,
            unavailable_nodes: Vec::new(),
            version: format!("sightline v{VERSION}"),
            flows_rate: self.stats.flow_rate.per_second(Timestamp::now()),
        }))
    }
}
