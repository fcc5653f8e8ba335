//! The relay's `observer.Observer` as a tower service: GetFlows goes through
//! [`DownstreamCodec`] (agents' bytes forwarded as they came), every other method
//! through the generated server.

use std::convert::Infallible;
use std::task::{Context, Poll};

use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::observer::observer_server::ObserverServer;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};

use crate::fanout::ClientStream;
use crate::pool::MAX_MESSAGE_SIZE;
use crate::raw::{DownstreamCodec, RelayFlow};
use crate::server::RelayObserver;

const GET_FLOWS: &str = "/observer.Observer/GetFlows";

#[derive(Clone)]
pub struct RelayRouter {
    observer: RelayObserver,
    generated: ObserverServer<RelayObserver>,
}

impl RelayRouter {
    pub fn new(observer: RelayObserver) -> Self {
        Self {
            generated: ObserverServer::new(observer.clone())
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            observer,
        }
    }
}

impl NamedService for RelayRouter {
    const NAME: &'static str = sightline_proto::reflection::OBSERVER_SERVICE;
}

struct GetFlows(RelayObserver);

impl ServerStreamingService<GetFlowsRequest> for GetFlows {
    type Response = RelayFlow;
    type ResponseStream = ClientStream<RelayFlow>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<GetFlowsRequest>) -> Self::Future {
        let result = self.0.flows(request);
        Box::pin(async move { result })
    }
}

impl<B> Service<http::Request<B>> for RelayRouter
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
        let method = GetFlows(self.observer.clone());
        Box::pin(async move {
            let mut grpc = Grpc::new(DownstreamCodec).apply_max_message_size_config(None, Some(MAX_MESSAGE_SIZE));
            Ok(grpc.server_streaming(method, request).await)
        })
    }
}
