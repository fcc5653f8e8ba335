//! Turns fuzz input into a TCP conversation for the L7 tracker: each segment is a control
//! byte (direction, retransmission, capture truncation, connection end) and a length
//! byte, then that many payload bytes. Checks what must hold for any input: no panic,
//! records typed REQUEST or RESPONSE with a record body, and responses' latencies within
//! the conversation's time span. For a clean conversation (whole captures, no replays or
//! connection ends, nothing counted as a failure) it also checks that where the segments
//! were cut does not matter: each direction's consecutive segments sent as one give the
//! same records.

use std::net::SocketAddr;

use crate::l7::{L7Message, L7Protocol, L7Settings, L7Tracker, Segment};
use sightline_proto::flow::L7FlowType;

/// One segment as the input describes it.
#[derive(Clone, Copy)]
struct Piece<'a> {
    from_client: bool,
    payload: &'a [u8],
    /// Bytes of the payload that were captured.
    capture: usize,
    /// Sent again, overlapping bytes already seen.
    replay: bool,
    fin: bool,
}

impl Piece<'_> {
    fn is_plain(&self) -> bool {
        self.capture >= self.payload.len() && !self.replay && !self.fin
    }
}

fn pieces(data: &[u8]) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [control, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        // Bits 3..7 cut the capture short: 0 keeps it all.
        let cut = usize::from(control >> 3);
        out.push(Piece {
            from_client: control & 1 == 0,
            payload,
            capture: if cut == 0 { payload.len() } else { cut * 4 },
            replay: control & 2 != 0,
            fin: control & 4 != 0,
        });
    }
    out
}

/// What one pass over a conversation gave.
struct Outcome {
    records: Vec<L7Message>,
    failures: u64,
    /// From the first segment's timestamp to the last one's.
    span_ns: u64,
}

fn converse(protocol: L7Protocol, prologue: &[u8], pieces: &[Piece<'_>]) -> Outcome {
    let settings = L7Settings {
        max_connections: 2,
        max_pending_requests: 8,
        ..L7Settings::default()
    };
    let mut tracker = L7Tracker::new(settings);
    let client: SocketAddr = "10.0.0.1:40000".parse().expect("literal");
    let server: SocketAddr = "10.0.0.2:8080".parse().expect("literal");
    let mut seq = [7u32, 9u32];
    let start = 1_000_000_000u64;
    let mut now = start;
    let mut records: Vec<L7Message> = Vec::new();

    let preface = Piece {
        from_client: true,
        payload: prologue,
        capture: prologue.len(),
        replay: false,
        fin: false,
    };
    let all = (!prologue.is_empty()).then_some(&preface).into_iter().chain(pieces);
    for piece in all {
        let index = usize::from(!piece.from_client);
        let (src, dst) = if piece.from_client {
            (client, server)
        } else {
            (server, client)
        };
        let length = piece.payload.len() as u32;
        let tcp_seq = if piece.replay {
            seq[index].wrapping_sub(length / 2)
        } else {
            seq[index]
        };
        let segment = Segment {
            src,
            dst,
            protocol,
            tcp_seq,
            payload_len: length,
            captured: &piece.payload[..piece.capture.min(piece.payload.len())],
            timestamp_ns: now,
            fin_or_rst: piece.fin,
            from_client: piece.from_client,
        };
        if !piece.replay {
            seq[index] = seq[index].wrapping_add(length);
        }
        // Under 1 ms for any input, so the latencies in Summaries (whole ms) do not depend on
        // how many segments there were.
        now += 100;
        tracker.on_segment(&segment, &mut records);
    }
    let stats = tracker.stats();
    let failures = [L7Protocol::Http1, L7Protocol::Http2, L7Protocol::Kafka]
        .into_iter()
        .map(|protocol| stats.total_failures(protocol))
        .sum();
    Outcome {
        records,
        failures,
        span_ns: now - start,
    }
}

/// Type and Summary of each record: what a user sees, without the timestamps that
/// depend on how many segments there were.
fn seen(records: &[L7Message]) -> Vec<(i32, String)> {
    records
        .iter()
        .map(|message| (message.flow_type as i32, message.summary()))
        .collect()
}

/// Returns the records, for tests that check what a given input yields.
pub fn run(protocol: L7Protocol, prologue: &[u8], data: &[u8]) -> Vec<L7Message> {
    let pieces = pieces(data);
    let outcome = converse(protocol, prologue, &pieces);
    for message in &outcome.records {
        // Reading a record builds its Hubble message, header list and Summary: all of it
        // runs on every input.
        let layer7 = message.with_header_list();
        let _ = message.summary();
        let flow_type = layer7.r#type;
        assert!(flow_type == L7FlowType::Request as i32 || flow_type == L7FlowType::Response as i32);
        assert!(layer7.record.is_some());
        assert!(layer7.latency_ns <= outcome.span_ns);
        assert_eq!(message.from_client, flow_type == L7FlowType::Request as i32);
    }

    if outcome.failures == 0 && pieces.iter().all(Piece::is_plain) {
        let mut merged: Vec<Piece<'_>> = Vec::new();
        let mut joined: Vec<Vec<u8>> = Vec::new();
        for piece in pieces.iter().filter(|piece| !piece.payload.is_empty()) {
            match joined.last_mut() {
                Some(bytes) if merged.last().is_some_and(|last| last.from_client == piece.from_client) => {
                    bytes.extend_from_slice(piece.payload)
                }
                _ => {
                    joined.push(piece.payload.to_vec());
                    merged.push(*piece);
                }
            }
        }
        let merged: Vec<Piece<'_>> = merged
            .iter()
            .zip(&joined)
            .map(|(piece, bytes)| Piece {
                payload: bytes,
                capture: bytes.len(),
                ..*piece
            })
            .collect();
        let whole = converse(protocol, prologue, &merged);
        if whole.failures == 0 {
            assert_eq!(
                seen(&outcome.records),
                seen(&whole.records),
                "records depend on segmentation"
            );
        }
    }
    outcome.records
}
