//! The per-connection table: finds (or creates) a connection for each segment, places
//! the segment in its direction's byte stream, feeds the protocol parser and turns what
//! the parser produced into redacted `L7Message`s with Summary texts. Bounded: past
//! `max_connections` the least recently used connection is dropped and counted.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use sightline_proto::flow::L7FlowType;

use super::redact::Redaction;
use super::stats::{FailureReason, L7Stats};
use super::stream::StreamCursor;
use super::trace_context::TraceId;
use super::{L7Message, L7Protocol, L7Record, L7Settings, Segment, detect, http1, http2, kafka};

/// Which way bytes travel on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    ToServer,
    ToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }
}

/// A record as a protocol parser produced it, before it gets the connection's ends.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Parsed {
    pub flow_type: L7FlowType,
    pub latency_ns: u64,
    pub record: L7Record,
    pub timestamp_ns: u64,
    /// W3C trace id from the request's `traceparent`.
    pub trace_id: Option<TraceId>,
}

/// What the parsers share while handling one segment.
pub(crate) struct ParseContext<'a> {
    /// Where finished records go, straight from the parser: a record is a few hundred
    /// bytes, and moving each through a staging list cost a measurable share of a pair.
    out: &'a mut Vec<L7Message>,
    pub settings: &'a L7Settings,
    /// `settings.redaction`, shared with the HTTP records that redact when read.
    pub redaction: &'a Arc<Redaction>,
    /// The connection's ends, which every record carries.
    client: SocketAddr,
    server: SocketAddr,
}

impl<'a> ParseContext<'a> {
    fn new(
        settings: &'a L7Settings,
        redaction: &'a Arc<Redaction>,
        out: &'a mut Vec<L7Message>,
        (client, server): (SocketAddr, SocketAddr),
    ) -> Self {
        Self {
            out,
            settings,
            redaction,
            client,
            server,
        }
    }

    pub(super) fn fail(&mut self, protocol: L7Protocol, reason: FailureReason) {
        self.settings.stats.count_failure(protocol, reason);
    }

    /// Hands a finished record over with the connection's ends (and Kafka its API key
    /// redaction). Inlined so that the parser builds the record in place, not on its
    /// stack for a copy.
    #[inline(always)]
    pub(super) fn push(&mut self, parsed: Parsed) {
        let mut record = parsed.record;
        if let L7Record::Kafka(kafka) = &mut record
            && self.redaction.kafka_api_key
        {
            super::redact::REDACTED.clone_into(&mut kafka.api_key);
        }
        self.out.push(L7Message {
            flow_type: parsed.flow_type,
            latency_ns: parsed.latency_ns,
            record,
            trace_id: parsed.trace_id,
            from_client: parsed.flow_type == L7FlowType::Request,
            client: self.client,
            server: self.server,
            timestamp_ns: parsed.timestamp_ns,
        });
    }
}

/// The protocol half of a connection. Each parser sees its two byte streams as data and gaps.
pub(crate) trait StreamParser {
    fn data(&mut self, cx: &mut ParseContext<'_>, direction: Direction, bytes: &[u8], timestamp_ns: u64);
    /// `len` bytes of the stream were not captured.
    fn gap(&mut self, cx: &mut ParseContext<'_>, direction: Direction, len: u32);
    /// The connection ended (or was evicted): finish what can be finished, count the rest.
    fn close(&mut self, cx: &mut ParseContext<'_>);
}

enum Parser {
    Http1(http1::Http1Parser),
    /// Boxed: two HPACK tables and the header-block scratch make it the largest by far.
    Http2(Box<http2::Http2Parser>),
    Kafka(kafka::KafkaParser),
}

impl Parser {
    fn new(protocol: L7Protocol) -> Self {
        match protocol {
            L7Protocol::Http1 => Parser::Http1(http1::Http1Parser::default()),
            L7Protocol::Http2 => Parser::Http2(Box::default()),
            L7Protocol::Kafka => Parser::Kafka(kafka::KafkaParser::default()),
        }
    }

    fn as_dyn(&mut self) -> &mut dyn StreamParser {
        match self {
            Parser::Http1(parser) => parser,
            Parser::Http2(parser) => parser.as_mut(),
            Parser::Kafka(parser) => parser,
        }
    }
}

/// Both ends of a connection in a fixed order, so either direction finds the same entry.
/// Ends are packed into integers: ordering and hashing two `SocketAddr` enums field by
/// field was a twentieth of an HTTP/1 pair's cost.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ConnectionKey([PackedEnd; 2]);

/// One end of a connection, equal to another exactly when their `SocketAddr`s are equal.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct PackedEnd {
    /// IPv4 addresses in the low 32 bits; `port_family` tells them from IPv6 ones.
    ip: u128,
    /// The port in the low 16 bits, bit 16 set for IPv6.
    port_family: u32,
    /// IPv6 flow info and scope id (zero for IPv4): part of `SocketAddr` equality.
    flowinfo: u32,
    scope_id: u32,
}

impl std::hash::Hash for PackedEnd {
    // Flow info and scope id are left out of the hash (equal ends still hash equally):
    // they are almost always zero, and two words less to mix per end.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.ip);
        state.write_u32(self.port_family);
    }
}

fn packed_end(address: SocketAddr) -> PackedEnd {
    match address {
        SocketAddr::V4(v4) => PackedEnd {
            ip: u128::from(v4.ip().to_bits()),
            port_family: u32::from(v4.port()),
            flowinfo: 0,
            scope_id: 0,
        },
        SocketAddr::V6(v6) => PackedEnd {
            ip: v6.ip().to_bits(),
            port_family: u32::from(v6.port()) | 1 << 16,
            flowinfo: v6.flowinfo(),
            scope_id: v6.scope_id(),
        },
    }
}

fn connection_key(a: SocketAddr, b: SocketAddr) -> ConnectionKey {
    let (a, b) = (packed_end(a), packed_end(b));
    ConnectionKey(if a <= b { [a, b] } else { [b, a] })
}

struct Connection {
    client: SocketAddr,
    server: SocketAddr,
    protocol: L7Protocol,
    streams: [StreamCursor; 2],
    closed: [bool; 2],
    parser: Parser,
    last_used: u64,
}

/// Follows L7 connections and turns their segments into `L7Message`s.
pub struct L7Tracker {
    settings: L7Settings,
    redaction: Arc<Redaction>,
    connections: FxHashMap<ConnectionKey, Connection>,
    /// Connections by last use, oldest first: the eviction order.
    recency: BTreeMap<u64, ConnectionKey>,
    clock: u64,
}

impl L7Tracker {
    /// A tracker following no connection yet.
    pub fn new(settings: L7Settings) -> Self {
        Self {
            redaction: Arc::new(settings.redaction.clone()),
            settings,
            connections: FxHashMap::default(),
            recency: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Where it counts records and failures.
    pub fn stats(&self) -> &L7Stats {
        &self.settings.stats
    }

    /// Connections currently followed.
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Feeds one segment; appends the complete records it finished to `out`. Never panics,
    /// never errors out: failures are counted (per protocol and reason) in `stats()`.
    pub fn on_segment(&mut self, segment: &Segment<'_>, out: &mut Vec<L7Message>) {
        let key = connection_key(segment.src, segment.dst);
        if segment.payload_len == 0 && !segment.fin_or_rst {
            return;
        }
        // Only a full table needs the extra lookup (to evict before a new connection);
        // otherwise one `entry` finds or makes the connection.
        if self.connections.len() >= self.settings.max_connections.max(1)
            && segment.payload_len > 0
            && !self.connections.contains_key(&key)
        {
            self.make_room(out);
        }
        let followed = self.connections.len();
        let connection = match self.connections.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(_) if segment.payload_len == 0 => return,
            Entry::Vacant(entry) => {
                self.settings.stats.set_connections(followed + 1);
                entry.insert(Self::open(segment))
            }
        };
        // A connection that is already the most recent keeps its place: consecutive
        // segments of one connection are the common case and need no reordering.
        if connection.last_used == 0 || connection.last_used != self.clock {
            self.clock += 1;
            self.recency.remove(&connection.last_used);
            connection.last_used = self.clock;
            self.recency.insert(self.clock, key);
        }

        let direction = if segment.src == connection.client {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let (client, server, protocol) = (connection.client, connection.server, connection.protocol);
        let before = out.len();
        let mut cx = ParseContext::new(&self.settings, &self.redaction, out, (client, server));
        if let Some(advance) =
            connection.streams[direction.index()].advance(segment.tcp_seq, segment.payload_len, segment.captured)
        {
            let parser = connection.parser.as_dyn();
            if advance.gap_before > 0 {
                parser.gap(&mut cx, direction, advance.gap_before);
            }
            if !advance.data.is_empty() {
                parser.data(&mut cx, direction, advance.data, segment.timestamp_ns);
            }
            if advance.gap_after > 0 {
                parser.gap(&mut cx, direction, advance.gap_after);
            }
        } else if segment.payload_len > 0 {
            cx.settings.stats.count_duplicate();
        }
        if segment.fin_or_rst {
            connection.closed[direction.index()] = true;
        }
        if connection.closed.iter().all(|closed| *closed) {
            connection.parser.as_dyn().close(&mut cx);
            self.recency.remove(&connection.last_used);
            self.connections.remove(&key);
            self.settings.stats.set_connections(self.connections.len());
        }
        self.settings.stats.count_records(protocol, out.len() - before);
    }

    /// Drops the least recently used connection when the table is full.
    fn make_room(&mut self, out: &mut Vec<L7Message>) {
        while self.connections.len() >= self.settings.max_connections.max(1) {
            let Some((_, key)) = self.recency.pop_first() else {
                return;
            };
            let Some(mut connection) = self.connections.remove(&key) else {
                continue;
            };
            self.settings.stats.count_eviction();
            self.settings
                .stats
                .count_failure(connection.protocol, FailureReason::Evicted);
            let before = out.len();
            let mut cx = ParseContext::new(
                &self.settings,
                &self.redaction,
                out,
                (connection.client, connection.server),
            );
            connection.parser.as_dyn().close(&mut cx);
            self.settings
                .stats
                .count_records(connection.protocol, out.len() - before);
        }
    }

    /// Decides who is the client and which parser to use. The datapath knows the side
    /// (the configured port is the server's; with `--l7-detect` the SYN's sender is the
    /// client); ports cannot tell, since an HTTP/2 server sends its SETTINGS first and
    /// gRPC's 50051 lies inside Linux's ephemeral range, above many clients' ports. A
    /// client's first bytes decide the protocol over the port's hint; a server's are not
    /// looked at (h2's first SETTINGS frame also parses as a Kafka request header).
    fn open(segment: &Segment<'_>) -> Connection {
        let src_is_client = segment.from_client;
        let protocol = if src_is_client {
            detect(segment.captured).unwrap_or(segment.protocol)
        } else {
            segment.protocol
        };
        let (client, server) = if src_is_client {
            (segment.src, segment.dst)
        } else {
            (segment.dst, segment.src)
        };
        Connection {
            client,
            server,
            protocol,
            streams: Default::default(),
            closed: [false; 2],
            parser: Parser::new(protocol),
            last_used: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Wire;
    use super::*;

    #[test]
    fn connection_keys_match_exactly_when_the_address_pairs_do_in_either_order() {
        use std::net::{SocketAddrV6, ToSocketAddrs};
        let parse = |text: &str| text.to_socket_addrs().ok().and_then(|mut found| found.next());
        let mut ends: Vec<SocketAddr> = [
            "10.0.0.1:80",
            "10.0.0.1:81",
            "10.0.0.2:80",
            "[::ffff:10.0.0.1]:80",
            "[::1]:80",
        ]
        .into_iter()
        .filter_map(parse)
        .collect();
        let v6 = |flowinfo, scope_id| {
            SocketAddr::V6(SocketAddrV6::new(std::net::Ipv6Addr::LOCALHOST, 80, flowinfo, scope_id))
        };
        ends.extend([v6(7, 0), v6(0, 3)]);
        assert_eq!(ends.len(), 7);
        for &a in &ends {
            for &b in &ends {
                assert!(connection_key(a, b) == connection_key(b, a), "{a} {b}");
                for &c in &ends {
                    for &d in &ends {
                        let same_pair = (a, b) == (c, d) || (a, b) == (d, c);
                        assert_eq!(
                            connection_key(a, b) == connection_key(c, d),
                            same_pair,
                            "{a} {b} / {c} {d}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn content_decides_the_protocol_and_the_client_over_the_hint() {
        // The datapath guessed Kafka by port, but the client speaks HTTP/1.
        let mut wire = Wire::new(L7Protocol::Kafka);
        wire.send(true, b"GET /k HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(wire.summaries(), ["HTTP/1.1 GET http://h/k"]);
    }

    #[test]
    fn a_connection_first_seen_from_the_server_side_keeps_client_and_server_right() {
        let mut wire = Wire::new(L7Protocol::Http1);
        wire.send(false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        wire.send(true, b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
        let request = &wire.out[0];
        assert!(request.from_client);
        assert_eq!((request.client, request.server), (wire.client, wire.server));
    }

    #[test]
    fn an_http2_server_speaking_first_from_a_port_above_the_clients_is_still_the_server() {
        // tonic/h2 servers send SETTINGS on accept; under load that segment reaches the
        // tracker before the client's preface. 50051 > 47426, so "lower port is the server"
        // took the server for the client and gave the connection up as mid-connection.
        let mut wire = Wire::new(L7Protocol::Http2);
        wire.client = "10.0.0.1:47426".parse().expect("literal address");
        wire.server = "10.0.0.2:50051".parse().expect("literal address");
        // h2's own first frame, as captured in the failing run.
        let server_settings = [
            0, 0, 18, 4, 0, 0, 0, 0, 0, 0, 4, 0, 16, 0, 0, 0, 5, 0, 0, 64, 0, 0, 6, 0, 0, 64, 0,
        ];
        wire.send(false, &server_settings);
        let mut client = super::super::detect::HTTP2_PREFACE.to_vec();
        client.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        wire.send(true, &client);
        let mut request = vec![0, 0, 0, 1, 0x5, 0, 0, 0, 1];
        let block = [0x83, 0x86, 0x84]; // :method POST, :scheme http, :path /
        request[2] = block.len() as u8;
        request.extend_from_slice(&block);
        wire.send(true, &request);
        let failures: Vec<_> = wire.tracker.stats().all_failures().filter(|(_, _, n)| *n > 0).collect();
        assert_eq!(failures, []);
        assert_eq!(wire.summaries(), ["HTTP/2 POST http:///"]);
    }

    #[test]
    fn records_are_counted_per_protocol_and_closed_connections_forgotten() {
        let mut wire = Wire::new(L7Protocol::Http1);
        wire.send(true, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        wire.send(false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(wire.tracker.stats().records(L7Protocol::Http1), 2);
        assert_eq!(wire.tracker.connections(), 1);
        wire.close();
        assert_eq!(wire.tracker.connections(), 0);
        assert_eq!(wire.tracker.stats().total_failures(L7Protocol::Http1), 0);
    }
}
