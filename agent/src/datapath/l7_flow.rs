//! L7 records from the ring: each captured TCP segment goes to the `L7Tracker`, and every
//! request or response it completes becomes a Hubble flow of type L7 (event type 129).
//!
//! The programs capture a connection only at its client pod's veth (see
//! `bpf/programs/src/l7.rs`), so these flows are reported once per connection, by the
//! client's node, with traffic direction EGRESS (Hubble's `reporter="client"`).

use std::net::{IpAddr, SocketAddr};

use pbjson_types::BoolValue;
use sightline_bpf_common::{FlowEvent, IPPROTO_TCP, L7_MAX_CAPTURE, L7Event, l7_protocol, tcp_flags};
use sightline_proto::Timestamp;
use sightline_proto::flow::{
    self, CiliumEventType, FlowType, Layer4, TraceObservationPoint, TrafficDirection, Verdict, layer4,
};

use super::{DecodeError, Decoder, EMITTER_VERSION, InterfaceRole, MONITOR_L7, addresses};
use crate::event::Event;
use crate::flow_record::FlowRecord;
use crate::l7::{L7Message, L7Protocol, L7Record, Segment};

/// The fixed part of an `L7Event`, before its payload.
const HEADER_LEN: usize = size_of::<L7Event>() - L7_MAX_CAPTURE;

/// The header of an L7 record and its captured payload bytes.
pub struct CapturedSegment<'a> {
    /// The flow header: 5-tuple, interface, time, TCP flags.
    pub event: FlowEvent,
    /// Sequence number of the segment's first payload byte.
    pub tcp_seq: u32,
    /// The segment's whole payload length on the wire.
    pub payload_len: u32,
    /// What the program selected the connection for.
    pub protocol: L7Protocol,
    /// The program's side of the segment (see `Segment::from_client`).
    pub from_client: bool,
    /// The bytes the program copied (a prefix of the payload).
    pub captured: &'a [u8],
}

/// Reads an `L7Event` record; the payload is only the bytes the program copied.
pub fn read_segment(record: &[u8]) -> Result<CapturedSegment<'_>, DecodeError> {
    if record.len() < HEADER_LEN {
        return Err(DecodeError::ShortRecord(record.len()));
    }
    // SAFETY: the length is checked above; the header part of L7Event is plain old data
    // (integers only) and read unaligned; the payload array is not read through it.
    let header: L7EventHeader = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
    let claimed = usize::from(header.captured_len);
    if claimed > L7_MAX_CAPTURE || claimed > header.payload_len as usize {
        return Err(DecodeError::L7Length {
            claimed,
            payload: header.payload_len,
        });
    }
    let captured = record
        .get(HEADER_LEN..HEADER_LEN + claimed)
        .ok_or(DecodeError::L7Length {
            claimed,
            payload: header.payload_len,
        })?;
    let protocol = match header.protocol {
        l7_protocol::HTTP1 => L7Protocol::Http1,
        l7_protocol::HTTP2 => L7Protocol::Http2,
        l7_protocol::KAFKA => L7Protocol::Kafka,
        other => return Err(DecodeError::L7Protocol(other)),
    };
    Ok(CapturedSegment {
        event: header.flow,
        tcp_seq: header.tcp_seq,
        payload_len: header.payload_len,
        protocol,
        from_client: header.from_client != 0,
        captured,
    })
}

/// `L7Event` without its payload array, so a record is read without copying 1 KiB.
#[repr(C)]
#[derive(Clone, Copy)]
struct L7EventHeader {
    flow: FlowEvent,
    tcp_seq: u32,
    payload_len: u32,
    captured_len: u16,
    protocol: u8,
    from_client: u8,
    _pad: u32,
}

const _: () = assert!(size_of::<L7EventHeader>() == HEADER_LEN);

fn socket_addresses(event: &FlowEvent) -> (SocketAddr, SocketAddr) {
    let (src, dst): (IpAddr, IpAddr) = addresses(&event.key);
    (
        SocketAddr::new(src, event.key.src_port),
        SocketAddr::new(dst, event.key.dst_port),
    )
}

impl Decoder {
    /// Feeds an L7 record to the tracker and emits the flows it completes (often none).
    pub(super) fn l7_record(&mut self, record: &[u8], emit: &mut dyn FnMut(Event)) -> Result<(), DecodeError> {
        let segment = read_segment(record)?;
        let event = &segment.event;
        if event.key.protocol != IPPROTO_TCP {
            return Err(DecodeError::L7Protocol(event.key.protocol));
        }
        let interface = self.interfaces.get(&event.key.ifindex);
        // Uplinks see the same segments again on their way between nodes.
        if interface.is_some_and(|i| i.role == InterfaceRole::Uplink) {
            return Ok(());
        }
        let (src, dst) = socket_addresses(event);
        let timestamp_ns = self.clock.to_wall_ns(event.timestamp_ns);
        let input = Segment {
            src,
            dst,
            protocol: segment.protocol,
            tcp_seq: segment.tcp_seq,
            payload_len: segment.payload_len,
            captured: segment.captured,
            timestamp_ns,
            fin_or_rst: event.tcp_flags & (tcp_flags::FIN | tcp_flags::RST) != 0,
            from_client: segment.from_client,
        };
        let mut messages = std::mem::take(&mut self.l7_messages);
        self.l7.on_segment(&input, &mut messages);
        let ifindex = event.key.ifindex;
        for message in messages.drain(..) {
            emit(Event::Flow(self.l7_flow(message, ifindex)));
        }
        self.l7_messages = messages;
        Ok(())
    }

    // Hubble still fills the deprecated `reply` and `Summary`, and so do we.
    #[allow(deprecated)]
    fn l7_flow(&mut self, message: L7Message, ifindex: u32) -> Box<FlowRecord> {
        let (src, dst) = if message.from_client {
            (message.client, message.server)
        } else {
            (message.server, message.client)
        };
        let mut flow = Box::<FlowRecord>::default();
        flow.addresses = Some((src.ip(), dst.ip()));
        flow.time = Some(wall_timestamp(message.timestamp_ns));
        flow.verdict = Verdict::Forwarded as i32;
        flow.r#type = FlowType::L7 as i32;
        flow.l4 = Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(flow::Tcp {
                source_port: u32::from(src.port()),
                destination_port: u32::from(dst.port()),
                flags: None,
            })),
        });
        flow.traffic_direction = TrafficDirection::Egress as i32;
        flow.trace_observation_point = TraceObservationPoint::UnknownPoint as i32;
        flow.is_reply = Some(BoolValue {
            value: !message.from_client,
        });
        flow.reply = !message.from_client;
        flow.event_type = Some(CiliumEventType {
            r#type: MONITOR_L7,
            sub_type: 0,
        });
        let (layer7, summary) = message.render();
        flow.summary = summary;
        flow.l7 = Some(Box::new(layer7));
        flow.trace_context = message.trace_id.map(|trace_id| {
            Box::new(flow::TraceContext {
                parent: Some(flow::TraceParent {
                    trace_id: trace_id.to_string(),
                }),
            })
        });
        let deferred = &mut flow.deferred;
        deferred.http_headers = match message.record {
            L7Record::Http(http) => http.headers,
            L7Record::Kafka(_) => None,
        };
        deferred.uuid = Some(uuid::Builder::from_random_bytes(self.uuids.u128(..).to_le_bytes()).into_uuid());
        deferred.emitter_version = Some(EMITTER_VERSION);
        deferred.node_name = Some(std::sync::Arc::clone(&self.node_name));
        if ifindex != 0 {
            let name = self.interfaces.get(&ifindex).map_or_else(
                || std::sync::Arc::clone(&self.unnamed),
                |i| std::sync::Arc::clone(&i.name),
            );
            deferred.interface = Some((ifindex, name));
        }
        flow
    }
}

fn wall_timestamp(ns: u64) -> Timestamp {
    Timestamp {
        seconds: (ns / 1_000_000_000) as i64,
        nanos: (ns % 1_000_000_000) as i32,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sightline_bpf_common::kind;

    fn record(protocol: u8, payload_len: u32, payload: &[u8]) -> Vec<u8> {
        let mut event = L7Event {
            flow: FlowEvent {
                kind: kind::L7,
                ..FlowEvent::default()
            },
            tcp_seq: 1000,
            payload_len,
            captured_len: payload.len() as u16,
            protocol,
            from_client: 1,
            _pad: 0,
            payload: [0; L7_MAX_CAPTURE],
        };
        event.payload[..payload.len()].copy_from_slice(payload);
        sightline_bpf_common::record_bytes(&event).to_vec()
    }

    #[test]
    fn a_segment_carries_only_the_captured_bytes() {
        let bytes = record(l7_protocol::HTTP1, 4000, b"GET / HTTP/1.1\r\n");
        let segment = read_segment(&bytes).unwrap();
        assert_eq!(segment.captured, b"GET / HTTP/1.1\r\n");
        assert_eq!((segment.tcp_seq, segment.payload_len), (1000, 4000));
        assert_eq!(segment.protocol, L7Protocol::Http1);
        assert!(segment.from_client);
        // The ring hands over whole reservations, but a record cut after the captured
        // bytes is still whole.
        assert!(read_segment(&bytes[..HEADER_LEN + 16]).is_ok());
    }

    #[test]
    fn inconsistent_records_are_errors_naming_the_values() {
        let bytes = record(l7_protocol::KAFKA, 10, b"0123456789abcdef");
        assert_eq!(
            read_segment(&bytes).err().unwrap().to_string(),
            "L7 record claims 16 captured bytes of a 10-byte payload"
        );
        let bytes = record(7, 16, b"0123456789abcdef");
        assert_eq!(read_segment(&bytes).err(), Some(DecodeError::L7Protocol(7)));
        let bytes = record(l7_protocol::HTTP2, 16, b"0123456789abcdef");
        assert_eq!(
            read_segment(&bytes[..HEADER_LEN + 8]).err().unwrap().to_string(),
            "L7 record claims 16 captured bytes of a 16-byte payload"
        );
        assert_eq!(read_segment(&bytes[..20]).err(), Some(DecodeError::ShortRecord(20)));
    }
}

#[cfg(test)]
#[path = "l7_flow_tests.rs"]
mod flow_tests;
