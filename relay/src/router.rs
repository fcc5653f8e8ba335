//! The relay's `observer.Observer` as served: GetFlows through [`DownstreamCodec`]
//! (agents' bytes forwarded as they came), every other method through the generated
//! server.

use sightline_proto::flows_route::FlowsRoute;
use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::observer::observer_server::ObserverServer;
use tonic::codegen::BoxFuture;
use tonic::server::ServerStreamingService;
use tonic::{Request, Response, Status};

use crate::fanout::ClientStream;
use crate::pool::MAX_MESSAGE_SIZE;
use crate::raw::{DownstreamCodec, RelayFlow};
use crate::server::RelayObserver;

/// The relay's Observer service with `GetFlows` served by the raw passthrough.
pub type RelayRouter = FlowsRoute<ObserverServer<RelayObserver>, GetFlows, DownstreamCodec>;

/// The Observer service for `observer`, its `GetFlows` forwarding agents' bytes unchanged.
pub fn relay_router(observer: RelayObserver) -> RelayRouter {
    let generated = ObserverServer::new(observer.clone())
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE);
    FlowsRoute::new(generated, GetFlows(observer), DownstreamCodec::new()).max_encoding_message_size(MAX_MESSAGE_SIZE)
}

#[derive(Clone)]
/// The raw `GetFlows` handler.
pub struct GetFlows(RelayObserver);

impl ServerStreamingService<GetFlowsRequest> for GetFlows {
    type Response = RelayFlow;
    type ResponseStream = ClientStream<RelayFlow>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<GetFlowsRequest>) -> Self::Future {
        let result = self.0.flows(request);
        Box::pin(async move { result })
    }
}
