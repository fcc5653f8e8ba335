//! Starts a real agent (ring + gRPC server) in-process and connects tonic clients.
#![allow(dead_code, clippy::unwrap_used)]

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use sightline_agent::app::Agent;
use sightline_agent::cli::Args;
use sightline_agent::event::{Event, EventSink};
use sightline_agent::observer::sink::RingSink;
use sightline_agent::peer::AnnouncedPeers;
use sightline_common::shutdown::Shutdown;
use sightline_proto::Timestamp;
use sightline_proto::flow::Flow;
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes};
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

pub struct TestAgent {
    pub sink: RingSink,
    pub socket: PathBuf,
    pub tcp: Option<SocketAddr>,
    pub peers: Arc<AnnouncedPeers>,
    pub node_name: String,
    stop: Shutdown,
    _dir: tempfile::TempDir,
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// An agent with a temp unix socket and a plaintext TCP port unless `args` configure TLS.
pub async fn start(args: &[&str]) -> TestAgent {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hubble.sock");
    let mut argv: Vec<OsString> = [
        "sightline-agent",
        "--listen-address",
        "127.0.0.1:0",
        "--node-name",
        "node-1",
        "--k8s-disabled",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    argv.push("--socket-path".into());
    argv.push(socket.clone().into());
    if !args.iter().any(|a| a.starts_with("--tls-cert-file")) {
        argv.push("--disable-server-tls".into());
    }
    argv.extend(args.iter().map(OsString::from));
    let args = Args::load_from(argv).unwrap();
    let agent = Agent::start(&args).await.unwrap();
    let stop = Shutdown::new();
    let tcp = agent.server.local_addr();
    tokio::spawn(agent.server.run(stop.clone()));
    TestAgent {
        sink: agent.sink,
        socket,
        tcp,
        peers: agent.peers,
        node_name: agent.node_name,
        stop,
        _dir: dir,
    }
}

impl TestAgent {
    pub async fn channel(&self) -> Channel {
        unix_channel(self.socket.clone()).await
    }

    pub async fn observer(&self) -> ObserverClient<Channel> {
        ObserverClient::new(self.channel().await)
    }

    pub fn publish(&mut self, event: Event) {
        self.sink.publish(event);
    }

    pub fn publish_flow(&mut self, flow: Flow) {
        self.sink.publish(Event::flow(flow));
    }
}

pub async fn unix_channel(path: PathBuf) -> Channel {
    connect_unix(Endpoint::from_static("http://localhost"), path).await
}

/// A client whose HTTP/2 windows hold only a few flows (a slow consumer).
pub async fn small_window_observer(agent: &TestAgent) -> ObserverClient<Channel> {
    let endpoint = Endpoint::from_static("http://localhost")
        .initial_stream_window_size(16 * 1024)
        .initial_connection_window_size(16 * 1024);
    ObserverClient::new(connect_unix(endpoint, agent.socket.clone()).await)
}

async fn connect_unix(endpoint: Endpoint, path: PathBuf) -> Channel {
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
        .unwrap()
}

pub fn at(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// A flow with an id (uuid) and a time.
pub fn flow(id: u64, seconds: i64) -> Flow {
    let mut f = sightline_agent::synthetic::flow(id, "node-1", at(seconds));
    f.uuid = format!("f{id}");
    f
}

/// A follow-mode GetFlows stream without history: what is published from now on.
pub async fn follow(client: &mut ObserverClient<Channel>) -> tonic::Streaming<GetFlowsResponse> {
    let request = GetFlowsRequest {
        follow: true,
        ..Default::default()
    };
    client.get_flows(request).await.unwrap().into_inner()
}

/// The stream's next response; a stream that stays quiet for 5 s fails the test.
pub async fn next(stream: &mut tonic::Streaming<GetFlowsResponse>) -> GetFlowsResponse {
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .expect("a response within 5 s")
        .unwrap()
        .expect("the stream is still open")
}

/// Runs a non-follow request to the end and returns every response.
pub async fn collect(client: &mut ObserverClient<Channel>, request: GetFlowsRequest) -> Vec<GetFlowsResponse> {
    let mut stream = client.get_flows(request).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.message().await.unwrap() {
        out.push(item);
    }
    out
}

/// The uuids of the flows among `responses`.
pub fn uuids(responses: &[GetFlowsResponse]) -> Vec<String> {
    responses
        .iter()
        .filter_map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(f)) => Some(f.uuid.clone()),
            _ => None,
        })
        .collect()
}
