//! L7 records from captured TCP payload, without a proxy: HTTP/1.x, HTTP/2 (gRPC) and
//! Kafka. The datapath hands over `Segment`s (the first bytes of each TCP segment on a
//! selected connection); `L7Tracker` follows each connection in both directions, feeds
//! its protocol parser and returns Hubble `Layer7` records with their Summary texts.
//!
//! Nothing in here fails loudly: traffic is outside input, so every problem is counted in
//! `L7Stats` (per protocol and reason) and the parser carries on at the next boundary.

mod detect;
mod header_fields;
mod headers;
mod http1;
mod http1_head;
mod http2;
mod http2_block;
mod http_record;
mod kafka;
mod kafka_wire;
mod redact;
mod stats;
mod stream;
mod summary;
mod trace_context;
mod tracker;

use std::net::SocketAddr;
use std::sync::Arc;

pub use self::detect::detect;
pub use self::header_fields::HeaderFields;
pub use self::http_record::HttpRecord;
pub use self::redact::Redaction;
pub use self::stats::{CaptureCounters, FailureReason, L7Stats};
pub use self::trace_context::TraceId;
pub use self::tracker::L7Tracker;

use sightline_proto::flow::{Kafka, L7FlowType, Layer7, layer7::Record};

/// Application protocol a connection was selected for (by port or by content).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L7Protocol {
    /// HTTP/1.0 and HTTP/1.1.
    Http1,
    /// Covers gRPC, which is HTTP/2 with `grpc-status` trailers.
    Http2,
    /// The Kafka wire protocol.
    Kafka,
}

impl L7Protocol {
    /// Every protocol, in label order.
    pub const ALL: [L7Protocol; 3] = [L7Protocol::Http1, L7Protocol::Http2, L7Protocol::Kafka];

    /// The name used in metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            L7Protocol::Http1 => "http1",
            L7Protocol::Http2 => "http2",
            L7Protocol::Kafka => "kafka",
        }
    }
}

/// One captured TCP segment, as the datapath hands it over.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    /// The segment's sender.
    pub src: SocketAddr,
    /// The segment's receiver.
    pub dst: SocketAddr,
    /// What the datapath selected the connection for; a hint, the tracker re-detects from content.
    pub protocol: L7Protocol,
    /// Sequence number of the segment's first payload byte.
    pub tcp_seq: u32,
    /// The segment's whole payload length on the wire.
    pub payload_len: u32,
    /// The first min(payload_len, capture limit) bytes of the payload.
    pub captured: &'a [u8],
    /// Wall clock, ns since the Unix epoch.
    pub timestamp_ns: u64,
    /// The connection ends with this segment.
    pub fin_or_rst: bool,
    /// The datapath's side of the segment: the configured port is the server's, and with
    /// `--l7-detect` the SYN's sender is the client. Used when content does not tell.
    pub from_client: bool,
}

/// One parsed L7 record, ready to become a `flow.Flow` of type L7 (event type 129). HTTP
/// records keep what they were read from: Hubble's `Layer7` message and the Summary text
/// are built when the record is read ([`L7Message::render`]), not on the parsing path.
#[derive(Clone, Debug, PartialEq)]
pub struct L7Message {
    /// REQUEST or RESPONSE.
    pub flow_type: L7FlowType,
    /// Request to response, on responses; 0 on requests.
    pub latency_ns: u64,
    /// The protocol's record.
    pub record: L7Record,
    /// `flow.trace_context.parent.trace_id`: the W3C trace id of the request's
    /// `traceparent`, on the request and on its response.
    pub trace_id: Option<TraceId>,
    /// True for the request direction (client → server).
    pub from_client: bool,
    /// The connection's client end.
    pub client: SocketAddr,
    /// The connection's server end.
    pub server: SocketAddr,
    /// When the record's first byte was captured, ns since the Unix epoch.
    pub timestamp_ns: u64,
}

/// The protocol record of an [`L7Message`].
#[derive(Clone, Debug, PartialEq)]
pub enum L7Record {
    /// HTTP/1.x or HTTP/2 (gRPC), built into Hubble's `Http` when read.
    Http(HttpRecord),
    /// Kafka, as Hubble fills it (API key already redacted).
    Kafka(Kafka),
}

impl L7Message {
    /// The `Layer7` record and its Summary text, method and URL built once for both. The
    /// HTTP header list is left empty: see [`L7Message::http_headers`].
    pub fn render(&self) -> (Layer7, String) {
        let (record, summary) = match &self.record {
            L7Record::Http(http) => {
                let http = http.to_http();
                let summary = summary::http(self.flow_type, &http, self.latency_ns);
                (Record::Http(http), summary)
            }
            #[allow(deprecated)] // Hubble still fills the deprecated Kafka record.
            L7Record::Kafka(kafka) => (Record::Kafka(kafka.clone()), summary::kafka(self.flow_type, kafka)),
        };
        let layer7 = Layer7 {
            r#type: self.flow_type as i32,
            latency_ns: self.latency_ns,
            record: Some(record),
        };
        (layer7, summary)
    }

    /// The `Layer7` record, its HTTP header list empty.
    pub fn layer7(&self) -> Layer7 {
        self.render().0
    }

    /// Hubble's Summary text.
    pub fn summary(&self) -> String {
        self.render().1
    }

    /// The HTTP record's header fields (redacted), which become its header list when read.
    pub fn http_headers(&self) -> Option<&HeaderFields> {
        match &self.record {
            L7Record::Http(http) => http.headers(),
            L7Record::Kafka(_) => None,
        }
    }

    /// The `Layer7` record as a reader sees it, the HTTP header list included.
    pub fn with_header_list(&self) -> Layer7 {
        let mut layer7 = self.layer7();
        if let (Some(Record::Http(http)), Some(fields)) = (&mut layer7.record, self.http_headers()) {
            http.headers = fields.to_list();
        }
        layer7
    }
}

/// Limits and redaction options of the tracker.
#[derive(Clone, Debug)]
pub struct L7Settings {
    /// Connections followed at once; the least recently used one is dropped past this.
    pub max_connections: usize,
    /// Requests waiting for their response, per connection; older ones are dropped past this.
    pub max_pending_requests: usize,
    /// A message head (HTTP/1 head, HTTP/2 header block, Kafka request prefix) buffered
    /// past this many bytes is given up on.
    pub max_head_bytes: usize,
    /// What is redacted in the records.
    pub redaction: Redaction,
    /// Where the tracker counts; shared with the `/metrics` scrape.
    pub stats: Arc<L7Stats>,
}

impl Default for L7Settings {
    fn default() -> Self {
        Self {
            max_connections: 16_384,
            max_pending_requests: 64,
            max_head_bytes: 16 * 1024,
            redaction: Redaction::default(),
            stats: Arc::default(),
        }
    }
}

#[cfg(test)]
mod http1_tests;
#[cfg(test)]
mod http2_tests;
#[cfg(test)]
mod kafka_tests;
#[cfg(test)]
mod test_support;
