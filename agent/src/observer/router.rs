//! `observer.Observer` as served: GetFlows through [`FlowsCodec`] (no per-client flow
//! copies), every other method through the generated server.

use std::sync::Arc;

use sightline_proto::flows_route::FlowsRoute;
use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::observer::observer_server::ObserverServer;
use tonic::codegen::BoxFuture;
use tonic::server::ServerStreamingService;
use tonic::{Request, Response, Status};

use super::codec::{FlowsCodec, FlowsItem};
use super::service::{BoxStream, ObserverService};

pub(crate) type ObserverRouter = FlowsRoute<ObserverServer<ObserverService>, GetFlows, FlowsCodec>;

pub(crate) fn observer_router(service: ObserverService) -> ObserverRouter {
    FlowsRoute::new(
        ObserverServer::new(service.clone()),
        GetFlows(Arc::new(service)),
        FlowsCodec::new(),
    )
}

#[derive(Clone)]
pub(crate) struct GetFlows(Arc<ObserverService>);

impl ServerStreamingService<GetFlowsRequest> for GetFlows {
    type Response = FlowsItem;
    type ResponseStream = BoxStream<FlowsItem>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<GetFlowsRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.flows(request) })
    }
}
