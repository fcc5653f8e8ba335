//! `observer.Observer` with GetFlows served through a codec of the server's choosing.
//!
//! GetFlows is where the bytes are: the agent sends flows it encoded once for all
//! clients, the relay forwards agents' bytes without decoding them. Both need their
//! own codec for that one method; every other method goes to the generated server.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::codec::Codec;
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};

use crate::observer::GetFlowsRequest;

const GET_FLOWS: &str = "/observer.Observer/GetFlows";

/// Routes GetFlows to `flows` (encoded with `C`), everything else to `generated`.
#[derive(Clone)]
pub struct FlowsRoute<G, F, C> {
    generated: G,
    flows: F,
    codec: C,
    max_message_size: Option<usize>,
}

impl<G, F, C> FlowsRoute<G, F, C> {
    pub fn new(generated: G, flows: F, codec: C) -> Self {
        Self {
            generated,
            flows,
            codec,
            max_message_size: None,
        }
    }

    /// Largest GetFlows response this route encodes (tonic's default otherwise).
    pub fn max_encoding_message_size(mut self, limit: usize) -> Self {
        self.max_message_size = Some(limit);
        self
    }
}

impl<G, F, C> NamedService for FlowsRoute<G, F, C> {
    const NAME: &'static str = crate::reflection::OBSERVER_SERVICE;
}

impl<G, F, C, B> Service<http::Request<B>> for FlowsRoute<G, F, C>
where
    G: Service<http::Request<B>, Response = http::Response<tonic::body::Body>, Error = Infallible>,
    G::Future: Send + 'static,
    F: ServerStreamingService<GetFlowsRequest> + Clone + Send + 'static,
    F::ResponseStream: Send + 'static,
    F::Future: Send + 'static,
    C: Codec<Encode = F::Response, Decode = GetFlowsRequest> + Clone + Send + 'static,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.generated.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != GET_FLOWS {
            return Box::pin(self.generated.call(request));
        }
        let (flows, codec, limit) = (self.flows.clone(), self.codec.clone(), self.max_message_size);
        Box::pin(async move {
            let mut grpc = Grpc::new(codec).apply_max_message_size_config(None, limit);
            Ok(grpc.server_streaming(flows, request).await)
        })
    }
}
