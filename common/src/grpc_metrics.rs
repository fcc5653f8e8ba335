//! gRPC server metrics under the names and labels of go-grpc-prometheus, which
//! Hubble's agent and relay export and Hubble's dashboards query:
//! `grpc_server_started_total`, `grpc_server_handled_total`,
//! `grpc_server_msg_received_total` and `grpc_server_msg_sent_total`.
//!
//! A tower layer around the tonic router, so every service is counted without
//! touching its code. It sees HTTP/2 requests: it counts gRPC messages by their
//! 5-byte length prefixes in the bodies, and reads the status from the trailers
//! (or the headers of a trailers-only response). As go-grpc-prometheus does, it
//! counts only methods the server registered, known from the services'
//! descriptor sets (which also say whether each side streams); other paths pass
//! through uncounted, so a scanner cannot create series.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::Message;

#[derive(Debug, thiserror::Error)]
/// Why the gRPC server metrics could not be set up.
pub enum GrpcMetricsError {
    #[error("gRPC metrics: a service descriptor set does not decode: {0}")]
    /// A descriptor set handed in does not decode.
    Descriptor(#[from] prost::DecodeError),
}

/// The method labels, in the order the Go client library prints them (sorted).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_method: String,
    grpc_service: String,
    grpc_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_code: &'static str,
    grpc_method: String,
    grpc_service: String,
    grpc_type: &'static str,
}

/// go-grpc-prometheus' `grpc_type` from the streaming flags of the method.
fn grpc_type(client_streaming: bool, server_streaming: bool) -> &'static str {
    match (client_streaming, server_streaming) {
        (false, false) => "unary",
        (true, false) => "client_stream",
        (false, true) => "server_stream",
        (true, true) => "bidi_stream",
    }
}

/// Go's `codes.Code.String()` for the `grpc-status` values.
fn code_name(status: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(status)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("Unknown")
}

const CANCELED: u32 = 1;
const UNKNOWN: u32 = 2;

#[derive(Debug)]
struct Families {
    started: Family<MethodLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    received: Family<MethodLabels, Counter>,
    sent: Family<MethodLabels, Counter>,
}

/// The counters of one registered method, resolved once so a message costs one atomic add.
#[derive(Debug)]
struct MethodCounters {
    labels: MethodLabels,
    started: Counter,
    received: Counter,
    sent: Counter,
}

/// The four families and the registered methods. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GrpcServerMetrics {
    families: Arc<Families>,
    /// By request path, `/package.Service/Method`.
    methods: Arc<HashMap<String, Arc<MethodCounters>>>,
}

/// No registered methods: nothing is counted (for when the descriptors do not decode).
impl Default for GrpcServerMetrics {
    fn default() -> Self {
        Self {
            families: Arc::new(Families {
                started: Family::default(),
                handled: Family::default(),
                received: Family::default(),
                sent: Family::default(),
            }),
            methods: Arc::new(HashMap::new()),
        }
    }
}

impl GrpcServerMetrics {
    /// [`new`](Self::new), or metrics that count nothing (logged) when a descriptor set
    /// does not decode: a server must not fail to start over its own metrics.
    pub fn or_disabled(descriptor_sets: &[&[u8]]) -> Self {
        Self::new(descriptor_sets).unwrap_or_else(|err| {
            tracing::error!(%err, "gRPC server metrics disabled");
            Self::default()
        })
    }

    /// Metrics for the methods of every service in the encoded
    /// `FileDescriptorSet`s (as tonic-build and the tonic crates publish them).
    /// Every method's started and message counters exist from the start, at 0,
    /// as go-grpc-prometheus' `InitializeMetrics` makes them.
    pub fn new(descriptor_sets: &[&[u8]]) -> Result<Self, GrpcMetricsError> {
        let families = Self::default().families;
        let mut methods = HashMap::new();
        for encoded in descriptor_sets {
            let set = prost_types::FileDescriptorSet::decode(*encoded)?;
            for file in &set.file {
                for service in &file.service {
                    let service_name = match file.package() {
                        "" => service.name().to_owned(),
                        package => format!("{package}.{}", service.name()),
                    };
                    for method in &service.method {
                        let labels = MethodLabels {
                            grpc_method: method.name().to_owned(),
                            grpc_service: service_name.clone(),
                            grpc_type: grpc_type(method.client_streaming(), method.server_streaming()),
                        };
                        let counters = MethodCounters {
                            started: families.started.get_or_create(&labels).clone(),
                            received: families.received.get_or_create(&labels).clone(),
                            sent: families.sent.get_or_create(&labels).clone(),
                            labels,
                        };
                        methods.insert(format!("/{service_name}/{}", method.name()), Arc::new(counters));
                    }
                }
            }
        }
        Ok(Self {
            families,
            methods: Arc::new(methods),
        })
    }

    /// Adds the four families to `registry` (names without `_total`, which the encoder adds).
    pub fn register(&self, registry: &mut Registry) {
        let families = &self.families;
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server.",
            families.started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            families.handled.clone(),
        );
        registry.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server.",
            families.received.clone(),
        );
        registry.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server.",
            families.sent.clone(),
        );
    }

    /// The tower layer that counts every call through the server it wraps.
    pub fn layer(&self) -> GrpcMetricsLayer {
        GrpcMetricsLayer { metrics: self.clone() }
    }

    fn handled(&self, method: &MethodCounters, status: u32) {
        self.families
            .handled
            .get_or_create(&HandledLabels {
                grpc_code: code_name(status),
                grpc_method: method.labels.grpc_method.clone(),
                grpc_service: method.labels.grpc_service.clone(),
                grpc_type: method.labels.grpc_type,
            })
            .inc();
    }
}

/// The layer stack of `Server::builder().layer(metrics.layer())`, to name the router's type.
pub type WithGrpcMetrics = tower_layer::Stack<GrpcMetricsLayer, tower_layer::Identity>;

/// Wraps a tonic router (`Server::builder().layer(metrics.layer())`).
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    metrics: GrpcServerMetrics,
}

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Debug, Clone)]
/// The service a [`GrpcMetricsLayer`] wraps around a router; counts calls, messages and status codes.
pub struct GrpcMetricsService<S> {
    inner: S,
    metrics: GrpcServerMetrics,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ResBody> tower_service::Service<http::Request<tonic::body::Body>> for GrpcMetricsService<S>
where
    S: tower_service::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let method = self.metrics.methods.get(request.uri().path()).cloned();
        let request = match &method {
            Some(method) => {
                method.started.inc();
                let received = method.received.clone();
                request.map(|body| tonic::body::Body::new(CountedBody::new(body, Some(received), None)))
            }
            None => request,
        };
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let response = response.await?;
            let finish = method.map(|method| {
                // A trailers-only response (an error before any message) carries the status here.
                let header_status = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                Finish {
                    metrics,
                    method,
                    header_status,
                }
            });
            let sent = finish.as_ref().map(|f| f.method.sent.clone());
            Ok(response.map(|body| CountedBody::new(body, sent, finish)))
        })
    }
}

/// Counts `grpc_server_handled_total` once, when the response ends or is dropped.
#[derive(Debug)]
struct Finish {
    metrics: GrpcServerMetrics,
    method: Arc<MethodCounters>,
    header_status: Option<u32>,
}

impl Finish {
    fn record(self, trailer_status: Option<u32>) {
        let status = trailer_status.or(self.header_status).unwrap_or(UNKNOWN);
        self.metrics.handled(&self.method, status);
    }
}

/// Where a body is in the gRPC framing: inside a 5-byte prefix or a message.
#[derive(Debug, Default)]
struct Framing {
    prefix: [u8; 5],
    prefix_len: usize,
    message_left: u64,
}

impl Framing {
    /// Reads `data` and returns how many messages began in it.
    fn messages_in(&mut self, mut data: &[u8]) -> u64 {
        let mut began = 0;
        while !data.is_empty() {
            if self.message_left > 0 {
                let skip = usize::try_from(self.message_left).unwrap_or(usize::MAX).min(data.len());
                self.message_left -= skip as u64;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == 5 {
                began += 1;
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                self.message_left = u64::from(u32::from_be_bytes([a, b, c, d]));
            }
        }
        began
    }
}

pin_project_lite::pin_project! {
    /// A request or response body that counts the gRPC messages passing through
    /// and, for a response, the status it ends with.
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        framing: Framing,
        messages: Option<Counter>,
        finish: Option<Finish>,
    }

    impl<B> PinnedDrop for CountedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before its end: the client went away (go-grpc-prometheus
            // sees Canceled), unless the headers already held the status (a
            // trailers-only response, whose empty body need not be polled).
            if let Some(finish) = this.project().finish.take() {
                let status = finish.header_status.unwrap_or(CANCELED);
                finish.record(Some(status));
            }
        }
    }
}

impl<B> CountedBody<B> {
    fn new(inner: B, messages: Option<Counter>, finish: Option<Finish>) -> Self {
        Self {
            inner,
            framing: Framing::default(),
            messages,
            finish,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for CountedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(counter)) = (frame.data_ref(), this.messages.as_ref()) {
                    let began = this.framing.messages_in(data);
                    if began > 0 {
                        counter.inc_by(began);
                    }
                }
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(finish) = this.finish.take()
                {
                    let status = trailers
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    finish.record(status);
                }
            }
            Poll::Ready(None) => {
                if let Some(finish) = this.finish.take() {
                    finish.record(None);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(finish) = this.finish.take() {
                    finish.record(Some(UNKNOWN));
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests;
