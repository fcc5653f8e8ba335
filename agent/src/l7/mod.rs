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
mod http2;
mod http2_block;
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
pub use self::redact::Redaction;
pub use self::stats::{CaptureCounters, FailureReason, L7Stats};
pub use self::tracker::L7Tracker;

/// Application protocol a connection was selected for (by port or by content).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum L7Protocol {
    Http1,
    /// Covers gRPC, which is HTTP/2 with `grpc-status` trailers.
    Http2,
    Kafka,
}

impl L7Protocol {
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
    pub src: SocketAddr,
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

/// One parsed L7 record, ready to become a `flow.Flow` of type L7 (event type 129).
#[derive(Clone, Debug, PartialEq)]
pub struct L7Message {
    /// Type REQUEST/RESPONSE, `latency_ns` on responses, and the `http` or `kafka` record.
    /// The `http` record's header list is empty here: see `http_headers`.
    pub layer7: sightline_proto::flow::Layer7,
    /// The HTTP record's headers, redacted, turned into its header list only when read
    /// (`with_header_list`, or the flow record's deferred fields).
    pub http_headers: Option<HeaderFields>,
    /// `flow.trace_context.parent.trace_id`: the W3C trace id of the request's
    /// `traceparent`, on the request and on its response.
    pub trace_id: Option<String>,
    /// Hubble's Summary text for it.
    pub summary: String,
    /// True for the request direction (client → server).
    pub from_client: bool,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub timestamp_ns: u64,
}

impl L7Message {
    /// The `Layer7` record as a reader sees it, the HTTP header list included.
    pub fn with_header_list(&self) -> sightline_proto::flow::Layer7 {
        let mut layer7 = self.layer7.clone();
        if let (Some(sightline_proto::flow::layer7::Record::Http(http)), Some(fields)) =
            (&mut layer7.record, &self.http_headers)
        {
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
