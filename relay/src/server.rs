//! The relay's `observer.Observer`: streaming RPCs fan out through [`crate::fanout`],
//! unary ones are answered from all connected peers at once.

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use sightline_proto::observer::{
    GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse, GetFlowsRequest,
    GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest, GetNodesResponse, Namespace, Node,
    ServerStatusRequest, ServerStatusResponse, Tls, observer_server::Observer,
};
use sightline_proto::relay::NodeState;
use sightline_proto::wkt::UInt32Value;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::fanout::{self, FanoutSettings};
use crate::merge::Merge;
use crate::metrics::RelayMetrics;
use crate::pool::Pool;
use crate::raw::RelayFlow;

/// `version` in ServerStatus, like hubble-relay's `hubble-relay v<semver>`.
pub const VERSION: &str = concat!("sightline-relay v", env!("CARGO_PKG_VERSION"));
/// At most this many names in ServerStatus.unavailable_nodes, as in Hubble.
const MAX_UNAVAILABLE_LISTED: usize = 10;

#[derive(Clone)]
/// The relay's Observer service: answers from the pool's peers.
pub struct RelayObserver {
    /// The agents calls fan out to.
    pub pool: Pool,
    /// The settings in force; each new stream takes the current ones and keeps them
    /// for its lifetime, so a configuration change never disturbs an open stream.
    pub settings: tokio::sync::watch::Receiver<Arc<FanoutSettings>>,
    /// The relay's metrics.
    pub metrics: RelayMetrics,
    /// Cancelled at shutdown: open streams end.
    pub shutdown: CancellationToken,
    /// When the relay started, for `ServerStatus` uptime.
    pub started: Instant,
}

/// A merged stream as the client receives it.
pub type Stream<M> = fanout::ClientStream<M>;

fn versioned<T>(message: T) -> Response<T> {
    let mut response = Response::new(message);
    response.metadata_mut().insert(
        "hubble-relay-version",
        tonic::metadata::MetadataValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    response
}

impl RelayObserver {
    /// GetFlows as the relay serves it: agents' responses forwarded undecoded.
    pub fn flows(&self, request: Request<GetFlowsRequest>) -> Result<Response<Stream<RelayFlow>>, Status> {
        self.fan_out(request)
    }

    fn fan_out<M: Merge>(&self, request: Request<M::Request>) -> Result<Response<Stream<M>>, Status> {
        let window = M::window(request.get_ref());
        if window.first && window.follow {
            return Err(Status::invalid_argument("first cannot be specified with follow"));
        }
        let stream = fanout::start::<M>(
            self.pool.clone(),
            self.settings.borrow().clone(),
            self.metrics.clone(),
            request,
            self.shutdown.clone(),
        );
        Ok(versioned(stream))
    }
}

#[tonic::async_trait]
impl Observer for RelayObserver {
    type GetFlowsStream = Stream<GetFlowsResponse>;
    type GetAgentEventsStream = Stream<GetAgentEventsResponse>;
    type GetDebugEventsStream = Stream<GetDebugEventsResponse>;

    async fn get_flows(&self, request: Request<GetFlowsRequest>) -> Result<Response<Self::GetFlowsStream>, Status> {
        self.fan_out(request)
    }

    async fn get_agent_events(
        &self,
        request: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        self.fan_out(request)
    }

    async fn get_debug_events(
        &self,
        request: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        self.fan_out(request)
    }

    async fn get_nodes(&self, _: Request<GetNodesRequest>) -> Result<Response<GetNodesResponse>, Status> {
        let timeout = self.pool.dial_timeout();
        let calls = self.pool.snapshot().into_iter().map(|peer| async move {
            let tls = Tls {
                enabled: peer.info.tls_server_name.is_some(),
                server_name: peer.info.tls_server_name.clone().unwrap_or_default(),
            };
            let mut node = Node {
                name: peer.info.name.clone(),
                address: peer.info.address.to_string(),
                tls: Some(tls),
                state: NodeState::NodeUnavailable.into(),
                ..Node::default()
            };
            if let Some(mut client) = peer.client() {
                // Asked now, as Hubble does: the pool's last probe may be seconds old.
                match tokio::time::timeout(timeout, client.server_status(ServerStatusRequest {})).await {
                    Ok(Ok(status)) => {
                        let status = status.into_inner();
                        node.state = NodeState::NodeConnected.into();
                        node.version = status.version;
                        node.uptime_ns = status.uptime_ns;
                        node.num_flows = status.num_flows;
                        node.max_flows = status.max_flows;
                        node.seen_flows = status.seen_flows;
                    }
                    Ok(Err(_)) | Err(_) => node.state = NodeState::NodeError.into(),
                }
            }
            node
        });
        let nodes = join_all(calls).await;
        Ok(versioned(GetNodesResponse { nodes }))
    }

    async fn get_namespaces(
        &self,
        _: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        let timeout = self.pool.dial_timeout();
        let calls = self
            .pool
            .snapshot()
            .into_iter()
            .filter_map(|peer| peer.client())
            .map(|mut client| async move {
                match tokio::time::timeout(timeout, client.get_namespaces(GetNamespacesRequest {})).await {
                    Ok(Ok(response)) => response.into_inner().namespaces,
                    _ => Vec::new(),
                }
            });
        let mut namespaces: Vec<Namespace> = join_all(calls).await.into_iter().flatten().collect();
        namespaces.sort_by(|a, b| (&a.cluster, &a.namespace).cmp(&(&b.cluster, &b.namespace)));
        namespaces.dedup();
        Ok(versioned(GetNamespacesResponse { namespaces }))
    }

    async fn server_status(&self, _: Request<ServerStatusRequest>) -> Result<Response<ServerStatusResponse>, Status> {
        let timeout = self.pool.dial_timeout();
        let peers = self.pool.snapshot();
        let calls = peers.iter().map(|peer| {
            let client = peer.client();
            async move {
                let mut client = client?;
                match tokio::time::timeout(timeout, client.server_status(ServerStatusRequest {})).await {
                    Ok(Ok(response)) => Some(response.into_inner()),
                    _ => None,
                }
            }
        });
        let answers = join_all(calls).await;
        let mut total = ServerStatusResponse {
            version: VERSION.to_owned(),
            ..Default::default()
        };
        let mut unavailable = Vec::new();
        for (peer, answer) in peers.iter().zip(answers) {
            match answer {
                Some(status) => {
                    total.num_flows += status.num_flows;
                    total.max_flows += status.max_flows;
                    total.seen_flows += status.seen_flows;
                    total.flows_rate += status.flows_rate;
                    total.uptime_ns = total.uptime_ns.max(status.uptime_ns);
                }
                None => unavailable.push(peer.info.name.clone()),
            }
        }
        let count = |n: usize| {
            Some(UInt32Value {
                value: u32::try_from(n).unwrap_or(u32::MAX),
            })
        };
        total.num_connected_nodes = count(peers.len() - unavailable.len());
        total.num_unavailable_nodes = count(unavailable.len());
        unavailable.truncate(MAX_UNAVAILABLE_LISTED);
        total.unavailable_nodes = unavailable;
        if total.uptime_ns == 0 {
            total.uptime_ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        }
        Ok(versioned(total))
    }
}
