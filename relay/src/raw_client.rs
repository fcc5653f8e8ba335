//! GetFlows to an agent, read straight from the HTTP/2 body.
//!
//! Hubble's Go agents send every response as its own DATA frame. Through tonic's
//! `Streaming` each frame was copied into its buffer and split out again; here a
//! frame that holds whole messages is sliced (no copy), and only a message split
//! across frames is gathered in a buffer. That copy and tonic's per-frame
//! bookkeeping were a third of the relay's CPU on such feeds.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use prost::Message;
use prost::bytes::{Buf, BufMut, Bytes, BytesMut};
use sightline_proto::observer::GetFlowsRequest;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::header::{CONTENT_TYPE, HeaderValue, TE};
use tonic::codegen::http::{self, Method, Uri};
use tonic::codegen::{Body as _, Service};
use tonic::transport::Channel;
use tower::ServiceExt;

use crate::raw::RelayFlow;

/// The authority is the channel's; only the path matters.
const URI: &str = "http://hubble.invalid/observer.Observer/GetFlows";
/// gRPC's message prefix: a compression flag and a big-endian u32 length.
const PREFIX: usize = 5;

/// Calls GetFlows on `channel` and returns its responses as they arrive.
pub async fn get_flows(
    mut channel: Channel,
    request: tonic::Request<GetFlowsRequest>,
    max_message_size: usize,
) -> Result<FlowStream, Status> {
    let (metadata, _, message) = request.into_parts();
    let mut body = BytesMut::with_capacity(PREFIX + message.encoded_len());
    body.put_u8(0);
    body.put_u32(u32::try_from(message.encoded_len()).map_err(|_| Status::invalid_argument("request too large"))?);
    message
        .encode(&mut body)
        .map_err(|e| Status::internal(format!("encoding GetFlowsRequest: {e}")))?;
    let mut http_request = http::Request::new(Body::new(http_body_util::Full::new(body.freeze())));
    *http_request.method_mut() = Method::POST;
    *http_request.version_mut() = http::Version::HTTP_2;
    *http_request.uri_mut() = Uri::from_static(URI);
    let headers = http_request.headers_mut();
    headers.extend(metadata.into_headers());
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));

    let ready = channel
        .ready()
        .await
        .map_err(|e| Status::unavailable(format!("peer not ready: {e}")))?;
    let response = ready
        .call(http_request)
        .await
        .map_err(|e| Status::from_error(Box::new(e)))?;
    // A Trailers-Only response carries the call's status in its headers.
    if let Some(status) = Status::from_header_map(response.headers()) {
        if status.code() != tonic::Code::Ok {
            return Err(status);
        }
        return Ok(FlowStream::finished());
    }
    if response.status() != http::StatusCode::OK {
        return Err(Status::unknown(format!(
            "agent answered HTTP status {}",
            response.status()
        )));
    }
    Ok(FlowStream::new(response.into_body(), max_message_size))
}

/// The responses of one GetFlows call; ends with the call's status.
pub struct FlowStream {
    /// `None` once the status was read.
    body: Option<Body>,
    /// A message that started in an earlier frame.
    partial: BytesMut,
    /// The unread rest of the last frame, starting at a message boundary.
    ready: Bytes,
    max_message_size: usize,
}

impl FlowStream {
    /// The messages of a response body whose headers were already checked.
    pub fn new(body: Body, max_message_size: usize) -> Self {
        Self {
            body: Some(body),
            partial: BytesMut::new(),
            ready: Bytes::new(),
            max_message_size,
        }
    }

    fn finished() -> Self {
        Self {
            body: None,
            partial: BytesMut::new(),
            ready: Bytes::new(),
            max_message_size: 0,
        }
    }

    /// The next whole message from what has arrived, if there is one. When there is
    /// none, all that arrived is in `partial` and `ready` is empty.
    fn next_message(&mut self) -> Result<Option<Bytes>, Status> {
        if self.partial.is_empty() {
            // The common case: whole messages are sliced out of the frame, not copied.
            if let Some(len) = self.message_len(&self.ready)?
                && self.ready.len() >= PREFIX + len
            {
                let mut message = self.ready.split_to(PREFIX + len);
                message.advance(PREFIX);
                return Ok(Some(message));
            }
            self.gather(self.ready.len());
            return Ok(None);
        }
        // A message split across frames: gather it.
        if self.partial.len() < PREFIX {
            self.gather(PREFIX - self.partial.len());
        }
        let Some(len) = self.message_len(&self.partial)? else {
            return Ok(None);
        };
        let missing = PREFIX + len - self.partial.len();
        if missing > self.ready.len() {
            self.partial.reserve(missing);
            self.gather(self.ready.len());
            return Ok(None);
        }
        self.gather(missing);
        let mut message = self.partial.split().freeze();
        message.advance(PREFIX);
        Ok(Some(message))
    }

    fn gather(&mut self, count: usize) {
        let count = count.min(self.ready.len());
        self.partial.extend_from_slice(&self.ready[..count]);
        self.ready.advance(count);
    }

    /// The length of the message starting at `buf`, once its prefix is there.
    fn message_len(&self, buf: &[u8]) -> Result<Option<usize>, Status> {
        let Some(prefix) = buf.get(..PREFIX) else {
            return Ok(None);
        };
        if prefix[0] != 0 {
            return Err(Status::internal(
                "agent sent a compressed GetFlowsResponse, but the relay asked for none",
            ));
        }
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
        if len > self.max_message_size {
            return Err(Status::resource_exhausted(format!(
                "GetFlowsResponse of {len} bytes exceeds the limit of {} bytes",
                self.max_message_size
            )));
        }
        Ok(Some(len))
    }

    fn parse(message: Bytes) -> Result<RelayFlow, Status> {
        RelayFlow::parse(message).map_err(|e| Status::internal(format!("malformed GetFlowsResponse from agent: {e}")))
    }
}

impl Stream for FlowStream {
    type Item = Result<RelayFlow, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match this.next_message() {
                Ok(Some(message)) => return Poll::Ready(Some(Self::parse(message))),
                Ok(None) => {}
                Err(status) => {
                    // Past a broken prefix nothing can be framed: the call is over.
                    this.body = None;
                    this.ready = Bytes::new();
                    this.partial.clear();
                    return Poll::Ready(Some(Err(status)));
                }
            }
            let Some(body) = this.body.as_mut() else {
                return Poll::Ready(None);
            };
            let frame = match Pin::new(body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.body = None;
                    return Poll::Ready(Some(Err(Status::internal("agent ended GetFlows without a status"))));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.body = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let frame = match frame.into_data() {
                Ok(data) => {
                    this.ready = data;
                    continue;
                }
                Err(frame) => frame,
            };
            let Ok(trailers) = frame.into_trailers() else {
                continue;
            };
            this.body = None;
            if !this.partial.is_empty() {
                return Poll::Ready(Some(Err(Status::internal("agent ended GetFlows inside a message"))));
            }
            return match Status::from_header_map(&trailers) {
                Some(status) if status.code() == tonic::Code::Ok => Poll::Ready(None),
                Some(status) => Poll::Ready(Some(Err(status))),
                None => Poll::Ready(Some(Err(Status::internal("agent's trailers carry no grpc-status")))),
            };
        }
    }
}

#[cfg(test)]
mod tests;
