//! A fake Hubble agent serving `observer.Observer` from a synthetic flow history.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sightline_proto::Timestamp;
use sightline_proto::flow::Flow;
use sightline_proto::observer::observer_server::{Observer, ObserverServer};
use sightline_proto::observer::{
    GetAgentEventsRequest, GetAgentEventsResponse, GetDebugEventsRequest, GetDebugEventsResponse, GetFlowsRequest,
    GetFlowsResponse, GetNamespacesRequest, GetNamespacesResponse, GetNodesRequest, GetNodesResponse, Namespace,
    ServerStatusRequest, ServerStatusResponse, get_flows_response::ResponseTypes,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use super::killable::Killable;
use tonic::{Request, Response, Status};

pub fn flow_response(node: &str, time: Timestamp, namespace: &str) -> GetFlowsResponse {
    let flow = Flow {
        time: Some(time),
        node_name: node.to_owned(),
        source: Some(Box::new(sightline_proto::flow::Endpoint {
            namespace: namespace.to_owned(),
            ..Default::default()
        })),
        ..Default::default()
    };
    GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(flow)),
        node_name: node.to_owned(),
        time: Some(time),
    }
}

type FlowStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<GetFlowsResponse, Status>> + Send>>;

/// How the fake answers GetFlows, for tests of peers that misbehave.
#[derive(Clone, Debug, Default)]
pub enum FlowsAnswer {
    #[default]
    Serve,
    /// Refuse every call with this status.
    Reject(Status),
    /// Answer with headers, then never send anything.
    Hang,
}

#[derive(Clone)]
struct State {
    name: String,
    history: Arc<Mutex<Vec<GetFlowsResponse>>>,
    live: broadcast::Sender<GetFlowsResponse>,
    agent_events: Arc<Mutex<Vec<GetAgentEventsResponse>>>,
    open_streams: Arc<AtomicUsize>,
    flows_calls: Arc<AtomicUsize>,
    /// Every GetFlows request received, in order.
    flows_requests: Arc<Mutex<Vec<GetFlowsRequest>>>,
    answer: Arc<Mutex<FlowsAnswer>>,
    namespaces: Vec<String>,
}

struct StreamGuard(Arc<AtomicUsize>);
impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tonic::async_trait]
impl Observer for State {
    type GetFlowsStream = FlowStream;
    type GetAgentEventsStream = ReceiverStream<Result<GetAgentEventsResponse, Status>>;
    type GetDebugEventsStream = ReceiverStream<Result<GetDebugEventsResponse, Status>>;

    async fn get_flows(&self, request: Request<GetFlowsRequest>) -> Result<Response<Self::GetFlowsStream>, Status> {
        self.flows_calls.fetch_add(1, Ordering::SeqCst);
        self.flows_requests.lock().unwrap().push(request.get_ref().clone());
        match self.answer.lock().unwrap().clone() {
            FlowsAnswer::Serve => {}
            FlowsAnswer::Reject(status) => return Err(status),
            FlowsAnswer::Hang => {
                self.open_streams.fetch_add(1, Ordering::SeqCst);
                let guard = StreamGuard(self.open_streams.clone());
                let never = tokio_stream::pending().map(move |item| {
                    let _alive = &guard;
                    item
                });
                return Ok(Response::new(Box::pin(never)));
            }
        }
        let request = request.into_inner();
        let live = self.live.subscribe();
        let history = self.history.lock().unwrap().clone();
        let number = usize::try_from(request.number).unwrap_or(usize::MAX);
        let backlog: Vec<_> = if let Some(since) = request.since {
            // As Hubble's agent: from `since` on, `number` counted forward, and
            // everything in follow mode.
            let limit = if number == 0 || request.follow {
                usize::MAX
            } else {
                number
            };
            history
                .into_iter()
                .filter(|r| r.time.is_some_and(|t| t.as_unix_nanos() >= since.as_unix_nanos()))
                .take(limit)
                .collect()
        } else if request.first {
            history.into_iter().take(number).collect()
        } else if request.follow && request.number == 0 {
            Vec::new()
        } else {
            let skip = history
                .len()
                .saturating_sub(if number == 0 { usize::MAX } else { number });
            history.into_iter().skip(skip).collect()
        };
        self.open_streams.fetch_add(1, Ordering::SeqCst);
        let guard = StreamGuard(self.open_streams.clone());
        let backlog = tokio_stream::iter(backlog.into_iter().map(Ok));
        // Polled by tonic directly (no task, no channel) so replaying history is fast
        // enough to measure the relay rather than this fake.
        let stream: FlowStream = if request.follow {
            let live = tokio_stream::wrappers::BroadcastStream::new(live)
                .filter_map(Result::ok)
                .map(Ok);
            Box::pin(backlog.chain(live).map(move |item| {
                let _alive = &guard;
                item
            }))
        } else {
            Box::pin(backlog.map(move |item| {
                let _alive = &guard;
                item
            }))
        };
        Ok(Response::new(stream))
    }

    /// The newest `number` agent events (all with 0), then the stream ends.
    async fn get_agent_events(
        &self,
        request: Request<GetAgentEventsRequest>,
    ) -> Result<Response<Self::GetAgentEventsStream>, Status> {
        let number = usize::try_from(request.into_inner().number).unwrap_or(usize::MAX);
        let events = self.agent_events.lock().unwrap().clone();
        let skip = if number == 0 {
            0
        } else {
            events.len().saturating_sub(number)
        };
        let (tx, rx) = mpsc::channel(events.len().max(1));
        for event in events.into_iter().skip(skip) {
            let _ = tx.try_send(Ok(event));
        }
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_debug_events(
        &self,
        _: Request<GetDebugEventsRequest>,
    ) -> Result<Response<Self::GetDebugEventsStream>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_nodes(&self, _: Request<GetNodesRequest>) -> Result<Response<GetNodesResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn get_namespaces(
        &self,
        _: Request<GetNamespacesRequest>,
    ) -> Result<Response<GetNamespacesResponse>, Status> {
        let namespaces = self
            .namespaces
            .iter()
            .map(|ns| Namespace {
                cluster: "default".into(),
                namespace: ns.clone(),
            })
            .collect();
        Ok(Response::new(GetNamespacesResponse { namespaces }))
    }

    async fn server_status(&self, _: Request<ServerStatusRequest>) -> Result<Response<ServerStatusResponse>, Status> {
        let seen = self.history.lock().unwrap().len() as u64;
        Ok(Response::new(ServerStatusResponse {
            num_flows: seen.min(4095),
            max_flows: 4095,
            seen_flows: seen,
            uptime_ns: 1_000,
            version: format!("fake {}", self.name),
            flows_rate: 1.5,
            ..Default::default()
        }))
    }
}

/// A fake agent; `kill` shuts its sockets like a dying process, `restart` serves again on the same port.
pub struct FakeAgent {
    pub name: String,
    pub address: SocketAddr,
    state: State,
    /// Ends `emit_every` when the agent is killed.
    stop: CancellationToken,
    connections: Killable,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS handshakes that failed: proof that a client dialled, and was refused or refused us.
    failed_handshakes: Arc<AtomicUsize>,
}

impl FakeAgent {
    pub async fn start(name: &str, namespaces: &[&str]) -> Self {
        Self::start_with_tls(name, namespaces, None).await
    }

    pub async fn start_with_tls(name: &str, namespaces: &[&str], tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let state = State {
            name: name.to_owned(),
            history: Arc::default(),
            live: broadcast::channel(4096).0,
            agent_events: Arc::default(),
            open_streams: Arc::default(),
            flows_calls: Arc::default(),
            flows_requests: Arc::default(),
            answer: Arc::default(),
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
        };
        let agent = Self {
            name: name.to_owned(),
            address,
            state,
            stop: CancellationToken::new(),
            connections: Killable::default(),
            tls,
            failed_handshakes: Arc::default(),
        };
        agent.serve(listener);
        agent
    }

    fn serve(&self, listener: TcpListener) {
        let (tx, rx) = mpsc::channel::<Result<Conn, std::io::Error>>(16);
        let (mut accepted, tls) = (self.connections.accept(listener), self.tls.clone());
        let failed_handshakes = self.failed_handshakes.clone();
        tokio::spawn(async move {
            while let Some(tcp) = accepted.recv().await {
                let io = match &tls {
                    None => Conn::Plain(tcp),
                    Some(config) => match tokio_rustls::TlsAcceptor::from(config.clone()).accept(tcp).await {
                        Ok(stream) => Conn::Tls(Box::new(stream)),
                        Err(_) => {
                            failed_handshakes.fetch_add(1, Ordering::SeqCst);
                            continue;
                        }
                    },
                };
                if tx.send(Ok(io)).await.is_err() {
                    return;
                }
            }
        });
        let service = ObserverServer::new(self.state.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(ReceiverStream::new(rx)),
        );
    }

    /// Records a flow stamped `time` and sends it to followers.
    pub fn emit(&self, time: Timestamp) {
        let response = flow_response(&self.name, time, "default");
        self.state.history.lock().unwrap().push(response.clone());
        let _ = self.state.live.send(response);
    }

    /// Emits a flow stamped now (minus `skew`) every `period` until the agent is dropped or killed.
    pub fn emit_every(&self, period: Duration, skew: Duration) {
        let (history, live, name, stop) = (
            self.state.history.clone(),
            self.state.live.clone(),
            self.name.clone(),
            self.stop.clone(),
        );
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let time: Timestamp = (std::time::SystemTime::now() - skew).into();
                let response = flow_response(&name, time, "default");
                history.lock().unwrap().push(response.clone());
                let _ = live.send(response);
            }
        });
    }

    /// Records an agent event stamped `time`.
    pub fn emit_agent_event(&self, time: Timestamp) {
        let event = GetAgentEventsResponse {
            agent_event: Some(sightline_proto::flow::AgentEvent {
                r#type: sightline_proto::flow::AgentEventType::AgentStarted.into(),
                ..Default::default()
            }),
            node_name: self.name.clone(),
            time: Some(time),
        };
        self.state.agent_events.lock().unwrap().push(event);
    }

    pub fn answer_flows_with(&self, answer: FlowsAnswer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    /// GetFlows calls received so far, answered or not.
    pub fn flows_calls(&self) -> usize {
        self.state.flows_calls.load(Ordering::SeqCst)
    }

    /// Every GetFlows request received so far, in order.
    pub fn flows_requests(&self) -> Vec<GetFlowsRequest> {
        self.state.flows_requests.lock().unwrap().clone()
    }

    /// TLS handshakes with a client that failed.
    pub fn failed_handshakes(&self) -> usize {
        self.failed_handshakes.load(Ordering::SeqCst)
    }

    pub fn open_streams(&self) -> usize {
        self.state.open_streams.load(Ordering::SeqCst)
    }

    /// Like a crash: listener closed, every connection reset.
    pub fn kill(&mut self) {
        self.stop.cancel();
        self.connections.kill();
    }

    /// Serves again on the same port with a fresh history.
    pub async fn restart(&mut self) {
        self.state.history.lock().unwrap().clear();
        self.rejoin().await;
    }

    /// Serves again on the same port keeping its history, as an agent whose
    /// connection dropped while the process (and its ring) lived on.
    pub async fn rejoin(&mut self) {
        self.stop = CancellationToken::new();
        let listener = TcpListener::bind(self.address).await.unwrap();
        self.serve(listener);
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Plaintext or TLS connection, so one server type serves both.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl tokio::io::AsyncRead for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}
