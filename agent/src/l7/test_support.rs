//! A scripted TCP connection for parser tests: sends byte strings as segments in either
//! direction with correct sequence numbers, optionally truncated like the capture does.

use std::net::SocketAddr;

use sightline_proto::flow::{Http, Kafka, L7FlowType, layer7::Record};

use super::{L7Message, L7Protocol, L7Record, L7Settings, L7Tracker, Segment};

pub(crate) struct Wire {
    pub tracker: L7Tracker,
    pub protocol: L7Protocol,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Next sequence number per direction: [client → server, server → client].
    pub seq: [u32; 2],
    pub now_ns: u64,
    pub out: Vec<L7Message>,
}

impl Wire {
    pub(crate) fn new(protocol: L7Protocol) -> Self {
        Self::with_settings(protocol, L7Settings::default())
    }

    pub(crate) fn with_settings(protocol: L7Protocol, settings: L7Settings) -> Self {
        Self {
            tracker: L7Tracker::new(settings),
            protocol,
            client: "10.0.0.1:43210".parse().expect("literal address"),
            server: "10.0.0.2:8080".parse().expect("literal address"),
            seq: [1_000, 4_000_000_000],
            now_ns: 1_700_000_000_000_000_000,
            out: Vec::new(),
        }
    }

    pub(crate) fn wait_ms(&mut self, ms: u64) {
        self.now_ns += ms * 1_000_000;
    }

    /// One segment carrying all of `bytes`, fully captured.
    pub(crate) fn send(&mut self, from_client: bool, bytes: &[u8]) {
        self.send_captured(from_client, bytes, bytes.len());
    }

    /// One segment carrying `bytes` of which only the first `capture` bytes were copied.
    pub(crate) fn send_captured(&mut self, from_client: bool, bytes: &[u8], capture: usize) {
        let index = usize::from(!from_client);
        let seq = self.seq[index];
        self.seq[index] = seq.wrapping_add(bytes.len() as u32);
        self.segment_at(from_client, seq, bytes, capture, false);
    }

    /// A segment at an explicit sequence number (retransmissions, duplicates).
    pub(crate) fn segment_at(&mut self, from_client: bool, seq: u32, bytes: &[u8], capture: usize, fin: bool) {
        let (src, dst) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let segment = Segment {
            src,
            dst,
            protocol: self.protocol,
            tcp_seq: seq,
            payload_len: bytes.len() as u32,
            captured: &bytes[..capture.min(bytes.len())],
            timestamp_ns: self.now_ns,
            fin_or_rst: fin,
            from_client,
        };
        self.tracker.on_segment(&segment, &mut self.out);
    }

    /// Sends `bytes` cut at the given offsets into several segments.
    pub(crate) fn send_cut(&mut self, from_client: bool, bytes: &[u8], cuts: &[usize]) {
        let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
        cuts.sort_unstable();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            if cut > start {
                self.send(from_client, &bytes[start..cut]);
                start = cut;
            }
        }
    }

    pub(crate) fn close(&mut self) {
        for from_client in [true, false] {
            let seq = self.seq[usize::from(!from_client)];
            self.segment_at(from_client, seq, &[], 0, true);
        }
    }

    pub(crate) fn summaries(&self) -> Vec<String> {
        self.out.iter().map(L7Message::summary).collect()
    }
}

/// The HTTP record as a reader sees it, its header list built from the deferred fields.
pub(crate) fn http_of(message: &L7Message) -> Http {
    match message.with_header_list().record {
        Some(Record::Http(http)) => http,
        other => panic!("expected an HTTP record, got {other:?}"),
    }
}

pub(crate) fn kafka_of(message: &L7Message) -> &Kafka {
    match &message.record {
        L7Record::Kafka(kafka) => kafka,
        other => panic!("expected a Kafka record, got {other:?}"),
    }
}

pub(crate) fn flow_type(message: &L7Message) -> L7FlowType {
    message.flow_type
}
