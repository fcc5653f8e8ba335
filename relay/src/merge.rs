//! What the fan-out needs to know about each streaming RPC it merges: how to call
//! it upstream, which window (`number`, `first`, `follow`) the client asked for,
//! and how to express node status in its response type.

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use sightline_proto::Timestamp;
use sightline_proto::observer::{
    GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse, GetFlowsRequest,
    GetFlowsResponse, get_flows_response::ResponseTypes, observer_client::ObserverClient,
};
use sightline_proto::relay::NodeStatusEvent;
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::pool::MAX_MESSAGE_SIZE;
use crate::raw::RelayFlow;
use crate::sort_buffer::Timed;

/// The part of a request that decides which events the merged stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// How many events were asked for.
    pub number: u64,
    /// The oldest `number` are wanted, not the newest.
    pub first: bool,
    /// The stream stays open for new events.
    pub follow: bool,
    /// A `since` was given: agents then count `number` forward from it.
    pub since: bool,
}

impl Window {
    /// Whether a bounded request keeps the oldest `number` events rather than the
    /// newest: with `first`, and with `since`, where every agent answers with the
    /// first `number` after it.
    pub fn keeps_oldest(&self) -> bool {
        self.first || self.since
    }
}

/// An upstream call's responses, ending with an error if the call failed.
pub type Responses<M> = BoxStream<'static, Result<M, Status>>;

/// What the fan-out needs to know about one streaming call to merge it across agents.
pub trait Merge: Timed + Sized + Send + 'static {
    /// The call's request message.
    type Request: Clone + Send + Sync + 'static;

    /// The part of the request that decides how many events the merged stream holds.
    fn window(request: &Self::Request) -> Window;
    /// The request for a peer that joins a follow stream late: only new events,
    /// so a returning peer does not replay what the client already saw.
    fn live_only(request: &Self::Request) -> Self::Request;
    /// Calls one agent with the request.
    fn call(channel: Channel, request: Request<Self::Request>) -> BoxFuture<'static, Result<Responses<Self>, Status>>;
    /// Whether this response counts towards `number` (lost events and node status do not).
    fn counts(&self) -> bool;
    /// The relay's node status event for this call's response type, if it has one.
    fn node_status(event: NodeStatusEvent, relay_node: &str, time: Timestamp) -> Option<Self>;
}

fn client(channel: Channel) -> ObserverClient<Channel> {
    ObserverClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

fn nanos(time: Option<&Timestamp>) -> i128 {
    time.map_or(0, Timestamp::as_unix_nanos)
}

impl Timed for GetFlowsResponse {
    fn time_nanos(&self) -> i128 {
        nanos(self.time.as_ref())
    }
}

impl Merge for GetFlowsResponse {
    type Request = GetFlowsRequest;

    fn window(request: &GetFlowsRequest) -> Window {
        Window {
            number: request.number,
            first: request.first,
            follow: request.follow,
            since: request.since.is_some(),
        }
    }

    fn live_only(request: &GetFlowsRequest) -> GetFlowsRequest {
        GetFlowsRequest {
            number: 0,
            first: false,
            since: None,
            ..request.clone()
        }
    }

    fn call(
        channel: Channel,
        request: Request<GetFlowsRequest>,
    ) -> BoxFuture<'static, Result<Responses<Self>, Status>> {
        Box::pin(async move {
            client(channel)
                .get_flows(request)
                .await
                .map(|response| response.into_inner().boxed())
        })
    }

    fn counts(&self) -> bool {
        matches!(self.response_types, Some(ResponseTypes::Flow(_)))
    }

    fn node_status(event: NodeStatusEvent, relay_node: &str, time: Timestamp) -> Option<Self> {
        Some(Self {
            response_types: Some(ResponseTypes::NodeStatus(event)),
            node_name: relay_node.to_owned(),
            time: Some(time),
        })
    }
}

impl Timed for RelayFlow {
    fn time_nanos(&self) -> i128 {
        RelayFlow::time_nanos(self)
    }
}

/// What the relay serves for GetFlows: agents' responses passed through undecoded.
impl Merge for RelayFlow {
    type Request = GetFlowsRequest;

    fn window(request: &GetFlowsRequest) -> Window {
        <GetFlowsResponse as Merge>::window(request)
    }

    fn live_only(request: &GetFlowsRequest) -> GetFlowsRequest {
        <GetFlowsResponse as Merge>::live_only(request)
    }

    fn call(
        channel: Channel,
        request: Request<GetFlowsRequest>,
    ) -> BoxFuture<'static, Result<Responses<Self>, Status>> {
        Box::pin(async move {
            crate::raw_client::get_flows(channel, request, MAX_MESSAGE_SIZE)
                .await
                .map(StreamExt::boxed)
        })
    }

    fn counts(&self) -> bool {
        self.is_flow()
    }

    fn node_status(event: NodeStatusEvent, relay_node: &str, time: Timestamp) -> Option<Self> {
        <GetFlowsResponse as Merge>::node_status(event, relay_node, time).map(RelayFlow::from)
    }
}

/// Agent and debug events share one shape: a time, no filters, no node status.
macro_rules! merge_events {
    ($response:ty, $request:ident, $rpc:ident) => {
        impl Timed for $response {
            fn time_nanos(&self) -> i128 {
                nanos(self.time.as_ref())
            }
        }

        impl Merge for $response {
            type Request = $request;

            fn window(request: &$request) -> Window {
                Window {
                    number: request.number,
                    first: request.first,
                    follow: request.follow,
                    since: request.since.is_some(),
                }
            }

            fn live_only(request: &$request) -> $request {
                $request {
                    number: 0,
                    first: false,
                    since: None,
                    ..*request
                }
            }

            fn call(
                channel: Channel,
                request: Request<$request>,
            ) -> BoxFuture<'static, Result<Responses<Self>, Status>> {
                Box::pin(async move {
                    client(channel)
                        .$rpc(request)
                        .await
                        .map(|response| response.into_inner().boxed())
                })
            }

            fn counts(&self) -> bool {
                true
            }

            fn node_status(_: NodeStatusEvent, _: &str, _: Timestamp) -> Option<Self> {
                None
            }
        }
    };
}

merge_events!(GetAgentEventsResponse, GetAgentEventsRequest, get_agent_events);
merge_events!(GetDebugEventsResponse, GetDebugEventsRequest, get_debug_events);
