//! Turns fuzz input into a TCP conversation for the L7 tracker: each segment is a control
//! byte (direction, retransmission, capture truncation, connection end) and a length
//! byte, then that many payload bytes. Checks what must hold for any input: no panic,
//! records typed REQUEST or RESPONSE with a record body, and responses' latencies within
//! the conversation's time span.

use std::net::SocketAddr;

use crate::l7::{L7Message, L7Protocol, L7Settings, L7Tracker, Segment};
use sightline_proto::flow::L7FlowType;

/// Returns the records, for tests that check what a given input yields.
pub fn run(protocol: L7Protocol, prologue: &[u8], data: &[u8]) -> Vec<L7Message> {
    let settings = L7Settings {
        max_connections: 2,
        max_pending_requests: 8,
        ..L7Settings::default()
    };
    let mut tracker = L7Tracker::new(settings);
    let client: SocketAddr = "10.0.0.1:40000".parse().expect("literal");
    let server: SocketAddr = "10.0.0.2:8080".parse().expect("literal");
    let mut seq = [7u32, 9u32];
    let mut now = 1_000_000_000u64;
    let mut out: Vec<L7Message> = Vec::new();
    let start = now;

    let mut feed =
        |tracker: &mut L7Tracker, from_client: bool, payload: &[u8], capture: usize, replay: bool, fin: bool| {
            let index = usize::from(!from_client);
            let (src, dst) = if from_client {
                (client, server)
            } else {
                (server, client)
            };
            let tcp_seq = if replay {
                seq[index].wrapping_sub(payload.len() as u32 / 2)
            } else {
                seq[index]
            };
            let segment = Segment {
                src,
                dst,
                protocol,
                tcp_seq,
                payload_len: payload.len() as u32,
                captured: &payload[..capture.min(payload.len())],
                timestamp_ns: now,
                fin_or_rst: fin,
            };
            if !replay {
                seq[index] = seq[index].wrapping_add(payload.len() as u32);
            }
            now += 1_000;
            tracker.on_segment(&segment, &mut out);
        };

    if !prologue.is_empty() {
        feed(&mut tracker, true, prologue, prologue.len(), false, false);
    }
    let mut rest = data;
    while let [control, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let from_client = control & 1 == 0;
        let replay = control & 2 != 0;
        let fin = control & 4 != 0;
        // Bits 3..7 cut the capture short: 0 keeps it all.
        let cut = usize::from(control >> 3);
        let capture = if cut == 0 { payload.len() } else { cut * 4 };
        feed(&mut tracker, from_client, payload, capture, replay, fin);
    }

    let span = now - start;
    for message in &out {
        let flow_type = message.layer7.r#type;
        assert!(flow_type == L7FlowType::Request as i32 || flow_type == L7FlowType::Response as i32);
        assert!(message.layer7.record.is_some());
        assert!(message.layer7.latency_ns <= span);
        assert_eq!(message.from_client, flow_type == L7FlowType::Request as i32);
    }
    out
}
