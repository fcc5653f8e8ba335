//! `observer.Observer` as a tower service: GetFlows goes through [`FlowsCodec`] (no
//! per-client flow copies), every other method through the generated server.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::observer::observer_server::ObserverServer;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};

use super::codec::{FlowsCodec, FlowsItem};
use super::service::{BoxStream, ObserverService};

const GET_FLOWS: &str = "/observer.Observer/GetFlows";

#[derive(Clone)]
pub struct ObserverRouter {
    service: Arc<ObserverService>,
    generated: ObserverServer<ObserverService>,
}

impl ObserverRouter {
    pub fn new(service: ObserverService) -> Self {
        Self {
            generated: ObserverServer::new(service.clone()),
            service: Arc::new(service),
        }
    }
}

impl NamedService for ObserverRouter {
    const NAME: &'static str = sightline_proto::reflection::OBSERVER_SERVICE;
}

struct GetFlows(Arc<ObserverService>);

impl ServerStreamingService<GetFlowsRequest> for GetFlows {
    type Response = FlowsItem;
    type ResponseStream = BoxStream<FlowsItem>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<GetFlowsRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.flows(request) })
    }
}

impl<B> Service<http::Request<B>> for ObserverRouter
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != GET_FLOWS {
            return self.generated.call(request);
        }
        let method = GetFlows(self.service.clone());
        Box::pin(async move { Ok(Grpc::new(FlowsCodec).server_streaming(method, request).await) })
    }
}
