//! Synthetic agents that frame their GetFlows stream as Hubble's Go agents do:
//! grpc-go hands every `GetFlowsResponse` to HTTP/2 as its own DATA frame, so a
//! relay in front of Hubble agents receives one frame, and often one socket read,
//! per flow. These agents replay pre-encoded responses one per frame and give the
//! runtime back after each, so the connection writes it before the next is ready.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use prost::Message;
use prost::bytes::{BufMut, Bytes};
use sightline_proto::Timestamp;
use sightline_proto::codec::CodecPair;
use sightline_proto::flows_route::FlowsRoute;
use sightline_proto::observer::observer_server::{Observer, ObserverServer};
use sightline_proto::observer::{
    GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse, GetFlowsRequest,
    GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest, GetNodesResponse,
    ServerStatusRequest, ServerStatusResponse, get_flows_response::ResponseTypes,
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codec::{BufferSettings, EncodeBuf, Encoder};
use tonic::codegen::BoxFuture;
use tonic::server::ServerStreamingService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;

/// One agent serving `history` on loopback until dropped.
pub struct GoFramedAgent {
    pub name: String,
    pub address: SocketAddr,
    /// Mean encoded size of one response, for the table's label.
    pub mean_response_bytes: usize,
    _stop: tokio_util::sync::DropGuard,
}

/// Certificates for an agent that serves mutual TLS 1.3, as Hubble agents do.
pub struct AgentTls {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    pub client_ca: std::path::PathBuf,
}

impl GoFramedAgent {
    /// Serves plaintext, or mutual TLS with `tls`.
    pub async fn start(name: &str, flows: u64, node_index: i64, tls: Option<&AgentTls>) -> Self {
        let history: Vec<Bytes> = (0..flows)
            .map(|k| {
                // Interleaved clocks: every agent's k-th flow lands between the others'.
                let time = Timestamp::from_unix_nanos(i128::from(k) * 1_000 + i128::from(node_index));
                Bytes::from(hubble_sized_response(k, name, time).encode_to_vec())
            })
            .collect();
        let mean_response_bytes = history.iter().map(Bytes::len).sum::<usize>() / history.len().max(1);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let stop = tokio_util::sync::CancellationToken::new();
        let router = FlowsRoute::new(
            ObserverServer::new(StatusOnly),
            Replay(Arc::new(history)),
            CodecPair::<OneFrameEncoder, ProstDecoder<GetFlowsRequest>>::new(),
        );
        let cancelled = stop.clone().cancelled_owned();
        let server = tonic::transport::Server::builder().add_service(router);
        match tls {
            None => {
                let incoming = TcpListenerStream::new(listener);
                tokio::spawn(server.serve_with_incoming_shutdown(incoming, cancelled));
            }
            Some(files) => {
                let (identity, ca) = (
                    sightline_common::tls::KeyPairFiles {
                        cert: files.cert.clone(),
                        key: files.key.clone(),
                    },
                    vec![files.client_ca.clone()],
                );
                let config = sightline_common::tls::Reloading::watch(
                    "bench agent certificate",
                    vec![files.cert.clone(), files.key.clone(), files.client_ca.clone()],
                    std::time::Duration::from_secs(3600),
                    move || sightline_common::tls::server_config(&identity, &ca),
                )
                .expect("agent TLS");
                let incoming = sightline_common::listen::tls_incoming(listener, config, stop.clone());
                tokio::spawn(server.serve_with_incoming_shutdown(incoming, cancelled));
            }
        }
        Self {
            name: name.to_owned(),
            address,
            mean_response_bytes,
            _stop: stop.drop_guard(),
        }
    }
}

/// A synthetic flow with the labels a Kubernetes pod typically carries, so a
/// response weighs what Hubble's do (~760 bytes).
pub fn hubble_sized_response(k: u64, node: &str, time: Timestamp) -> GetFlowsResponse {
    let mut flow = sightline_agent::synthetic::flow(k, node, time);
    for endpoint in [flow.source.as_deref_mut(), flow.destination.as_deref_mut()]
        .into_iter()
        .flatten()
    {
        let app = endpoint.workloads.first().map(|w| w.name.clone()).unwrap_or_default();
        endpoint.labels.extend([
            "k8s:io.cilium.k8s.policy.cluster=default".to_owned(),
            format!("k8s:io.cilium.k8s.policy.serviceaccount={app}"),
            format!(
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={}",
                endpoint.namespace
            ),
            format!("k8s:pod-template-hash=5d8f7c9b{:02x}", k % 256),
        ]);
    }
    GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(flow)),
        node_name: node.to_owned(),
        time: Some(time),
    }
}

/// Hands tonic each response as soon as it is encoded (a threshold of one byte),
/// so each goes to HTTP/2 alone and becomes one DATA frame.
#[derive(Debug, Default)]
struct OneFrameEncoder;

impl Encoder for OneFrameEncoder {
    type Item = Bytes;
    type Error = Status;

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::new(4096, 1)
    }

    fn encode(&mut self, item: Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put(item);
        Ok(())
    }
}

type ReplayStream = Pin<Box<dyn Stream<Item = Result<Bytes, Status>> + Send>>;

/// GetFlows: the whole history, one response per poll with a yield in between,
/// whatever the request asks (the benchmark only asks for everything).
#[derive(Clone)]
struct Replay(Arc<Vec<Bytes>>);

impl ServerStreamingService<GetFlowsRequest> for Replay {
    type Response = Bytes;
    type ResponseStream = ReplayStream;
    type Future = BoxFuture<Response<ReplayStream>, Status>;

    fn call(&mut self, _: Request<GetFlowsRequest>) -> Self::Future {
        let history = self.0.clone();
        let stream = futures::stream::unfold(0usize, move |next| {
            let history = history.clone();
            async move {
                let item = history.get(next)?.clone();
                // Pending once between responses, as a Go handler blocks in Send
                // while its writer goroutine flushes the frame.
                tokio::task::yield_now().await;
                Some((Ok(item), next + 1))
            }
        });
        Box::pin(async move { Ok(Response::new(Box::pin(stream) as ReplayStream)) })
    }
}

/// What the relay's pool asks besides GetFlows: ServerStatus, to see the peer is up.
struct StatusOnly;

#[tonic::async_trait]
impl Observer for StatusOnly {
    type GetFlowsStream = Pin<Box<dyn Stream<Item = Result<GetFlowsResponse, Status>> + Send>>;
    type GetAgentEventsStream = Pin<Box<dyn Stream<Item = Result<GetAgentEventsResponse, Status>> + Send>>;
    type GetDebugEventsStream = Pin<Box<dyn Stream<Item = Result<GetDebugEventsResponse, Status>> + Send>>;

    async fn get_flows(&self, _: Request<GetFlowsRequest>) -> Result<Response<Self::GetFlowsStream>, Status> {
        Err(Status::internal("routed to Replay"))
    }

    async fn get_agent_events(
        &self,
        _: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        Err(Status::unimplemented("bench agent"))
    }

    async fn get_debug_events(
        &self,
        _: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        Err(Status::unimplemented("bench agent"))
    }

    async fn get_nodes(&self, _: Request<GetNodesRequest>) -> Result<Response<GetNodesResponse>, Status> {
        Err(Status::unimplemented("bench agent"))
    }

    async fn get_namespaces(
        &self,
        _: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        Ok(Response::new(GetNamespacesResponse::default()))
    }

    async fn server_status(&self, _: Request<ServerStatusRequest>) -> Result<Response<ServerStatusResponse>, Status> {
        Ok(Response::new(ServerStatusResponse {
            version: "go-framed bench agent".into(),
            ..Default::default()
        }))
    }
}
