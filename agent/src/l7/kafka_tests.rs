use proptest::prelude::*;
use sightline_proto::flow::L7FlowType;

use super::test_support::{Wire, flow_type, kafka_of};
use super::{FailureReason, L7Protocol, L7Settings, Redaction};

const PRODUCE: i16 = 0;
const FETCH: i16 = 1;

/// Builds Kafka primitives in classic or compact (flexible) encoding.
#[derive(Default)]
struct Bytes {
    out: Vec<u8>,
    flexible: bool,
}

impl Bytes {
    fn flexible(flexible: bool) -> Self {
        Self {
            out: Vec::new(),
            flexible,
        }
    }
    fn i8(mut self, v: i8) -> Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i16(mut self, v: i16) -> Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i32(mut self, v: i32) -> Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn i64(mut self, v: i64) -> Self {
        self.out.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn uvarint(mut self, mut v: u32) -> Self {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
        self
    }
    fn string(self, s: &str) -> Self {
        if self.flexible {
            self.uvarint(s.len() as u32 + 1).raw(s.as_bytes())
        } else {
            self.i16(s.len() as i16).raw(s.as_bytes())
        }
    }
    fn null_string(self) -> Self {
        if self.flexible { self.uvarint(0) } else { self.i16(-1) }
    }
    fn array(self, len: u32) -> Self {
        if self.flexible {
            self.uvarint(len + 1)
        } else {
            self.i32(len as i32)
        }
    }
    fn bytes(self, data: &[u8]) -> Self {
        if self.flexible {
            self.uvarint(data.len() as u32 + 1).raw(data)
        } else {
            self.i32(data.len() as i32).raw(data)
        }
    }
    fn tags(self) -> Self {
        if self.flexible { self.uvarint(0) } else { self }
    }
    fn raw(mut self, data: &[u8]) -> Self {
        self.out.extend_from_slice(data);
        self
    }
    fn framed(self) -> Vec<u8> {
        let mut message = (self.out.len() as i32).to_be_bytes().to_vec();
        message.extend(self.out);
        message
    }
}

fn request_header(api_key: i16, version: i16, correlation_id: i32, flexible: bool) -> Bytes {
    // The client_id is a classic string in every header version.
    let header = Bytes::default()
        .i16(api_key)
        .i16(version)
        .i32(correlation_id)
        .string("shop-client");
    Bytes { flexible, ..header }.tags()
}

fn produce(version: i16, correlation_id: i32, topic: &str, records: &[u8]) -> Vec<u8> {
    let flexible = version >= 9;
    let mut b = request_header(PRODUCE, version, correlation_id, flexible);
    if version >= 3 {
        b = b.null_string();
    }
    b.i16(1)
        .i32(1500)
        .array(1)
        .string(topic)
        .array(1)
        .i32(0)
        .bytes(records)
        .tags()
        .tags()
        .tags()
        .framed()
}

fn produce_response(version: i16, correlation_id: i32, topic: &str, error: i16) -> Vec<u8> {
    let flexible = version >= 9;
    Bytes::flexible(flexible)
        .i32(correlation_id)
        .tags()
        .array(1)
        .string(topic)
        .array(1)
        .i32(0)
        .i16(error)
        .i64(42)
        .i64(-1)
        .i64(0)
        .tags()
        .tags()
        .i32(0)
        .tags()
        .framed()
}

fn fetch(version: i16, correlation_id: i32, topic: &str) -> Vec<u8> {
    let flexible = version >= 12;
    let mut b = request_header(FETCH, version, correlation_id, flexible);
    if version <= 14 {
        b = b.i32(-1);
    }
    b = b.i32(500).i32(1).i32(52_428_800).i8(0);
    if version >= 7 {
        b = b.i32(0).i32(-1);
    }
    b = b.array(1);
    b = if version >= 13 {
        b.raw(&[0xab; 16])
    } else {
        b.string(topic)
    };
    b.array(1)
        .i32(0)
        .i64(0)
        .i32(1_048_576)
        .tags()
        .tags()
        .array(0)
        .tags()
        .framed()
}

fn fetch_response(version: i16, correlation_id: i32, topic: &str, top_error: i16, partition_error: i16) -> Vec<u8> {
    let flexible = version >= 12;
    let mut b = Bytes::flexible(flexible).i32(correlation_id).tags().i32(0);
    if version >= 7 {
        b = b.i16(top_error).i32(0);
    }
    b.array(1)
        .string(topic)
        .array(1)
        .i32(0)
        .i16(partition_error)
        .i64(10)
        .framed()
}

fn wire() -> Wire {
    let mut wire = Wire::new(L7Protocol::Kafka);
    wire.server.set_port(9092);
    wire
}

#[test]
fn produce_request_and_response_become_hubble_records() {
    let mut wire = wire();
    wire.send(true, &produce(3, 3, "orders", b"batch"));
    wire.wait_ms(4);
    wire.send(false, &produce_response(3, 3, "orders", 0));
    assert_eq!(
        wire.summaries(),
        [
            "Kafka request produce correlation id 3 topic 'orders'",
            "Kafka response produce correlation id 3 topic 'orders' return code 0"
        ]
    );
    let request = kafka_of(&wire.out[0]);
    assert_eq!(
        (request.api_version, request.correlation_id, request.error_code),
        (3, 3, 0)
    );
    assert_eq!(flow_type(&wire.out[1]), L7FlowType::Response);
    assert_eq!(wire.out[1].layer7().latency_ns, 4_000_000);
    assert_eq!(kafka_of(&wire.out[1]).api_version, 3);
}

#[test]
fn flexible_produce_versions_give_topic_and_partition_error_code() {
    for version in [9, 10, 11] {
        let mut wire = wire();
        wire.send(true, &produce(version, 7, "payments", b"batch"));
        wire.send(false, &produce_response(version, 7, "payments", 6));
        let response = kafka_of(&wire.out[1]);
        assert_eq!(
            (response.topic.as_str(), response.error_code),
            ("payments", 6),
            "v{version}"
        );
    }
}

#[test]
fn fetch_versions_with_topic_names_give_the_topic_and_error_code() {
    for version in [4, 7, 11, 12] {
        let mut wire = wire();
        wire.send(true, &fetch(version, 11, "orders"));
        wire.send(false, &fetch_response(version, 11, "orders", 0, 1));
        let response = kafka_of(&wire.out[1]);
        assert_eq!(
            (response.api_key.as_str(), response.topic.as_str(), response.error_code),
            ("fetch", "orders", 1),
            "v{version}"
        );
        assert_eq!(wire.tracker.stats().total_failures(L7Protocol::Kafka), 0);
    }
    let mut wire = wire();
    wire.send(true, &fetch(12, 12, "orders"));
    wire.send(false, &fetch_response(12, 12, "orders", 71, 0));
    assert_eq!(kafka_of(&wire.out[1]).error_code, 71);
}

#[test]
fn fetch_by_topic_id_is_shown_without_topic_and_counted() {
    let mut wire = wire();
    wire.send(true, &fetch(13, 1, "ignored"));
    assert_eq!(wire.summaries(), ["Kafka request fetch correlation id 1 topic ''"]);
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Kafka, FailureReason::UnsupportedVersion),
        1
    );
}

#[test]
fn responses_pair_by_correlation_id_in_any_order() {
    let mut wire = wire();
    wire.send(true, &[produce(7, 1, "a", b"x"), fetch(11, 2, "b")].concat());
    wire.send(
        false,
        &[fetch_response(11, 2, "b", 0, 0), produce_response(7, 1, "a", 0)].concat(),
    );
    let responses: Vec<_> = wire
        .out
        .iter()
        .filter(|m| !m.from_client)
        .map(|m| (kafka_of(m).correlation_id, kafka_of(m).topic.clone()))
        .collect();
    assert_eq!(responses, [(2, "b".to_owned()), (1, "a".to_owned())]);
}

#[test]
fn record_batches_beyond_the_capture_limit_are_skipped_by_length() {
    let mut wire = wire();
    let big = produce(8, 1, "logs", &vec![0x5a; 20_000]);
    for part in big.chunks(1_448) {
        wire.send_captured(true, part, 512);
    }
    wire.send(true, &produce(8, 2, "logs", b"small"));
    wire.send(
        false,
        &[produce_response(8, 1, "logs", 0), produce_response(8, 2, "logs", 0)].concat(),
    );
    assert_eq!(wire.out.len(), 4);
    assert_eq!(wire.tracker.stats().total_failures(L7Protocol::Kafka), 0);
}

#[test]
fn lost_framing_resumes_at_the_next_segment_starting_a_request() {
    let mut wire = wire();
    let first = produce(8, 1, "logs", b"x");
    wire.send(true, &first[..2]);
    wire.seq[0] = wire.seq[0].wrapping_add(first.len() as u32 - 2); // the rest was never seen
    wire.send(true, &[0xde, 0xad, 0xbe, 0xef, 0x00]);
    wire.send(true, &produce(8, 2, "logs", b"y"));
    wire.send(false, &produce_response(8, 2, "logs", 0));
    assert_eq!(
        wire.summaries(),
        [
            "Kafka request produce correlation id 2 topic 'logs'",
            "Kafka response produce correlation id 2 topic 'logs' return code 0"
        ]
    );
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Kafka, FailureReason::GapInHead),
        1
    );
}

#[test]
fn other_apis_are_named_as_hubble_names_them() {
    let mut wire = wire();
    let api_versions = request_header(18, 3, 5, true)
        .string("librdkafka")
        .string("2.3.0")
        .tags()
        .framed();
    wire.send(true, &api_versions);
    wire.send(false, &Bytes::default().i32(5).i16(35).framed());
    wire.send(true, &request_header(60, 0, 6, false).framed());
    assert_eq!(
        wire.summaries(),
        [
            "Kafka request apiversions correlation id 5 topic ''",
            "Kafka response apiversions correlation id 5 topic '' return code 35",
            "Kafka request 60 correlation id 6 topic ''"
        ]
    );
}

#[test]
fn api_key_redaction_hides_the_name() {
    let settings = L7Settings {
        redaction: Redaction {
            kafka_api_key: true,
            ..Redaction::default()
        },
        ..L7Settings::default()
    };
    let mut wire = Wire::with_settings(L7Protocol::Kafka, settings);
    wire.send(true, &produce(3, 3, "orders", b"x"));
    assert_eq!(
        wire.summaries(),
        ["Kafka request HUBBLE_REDACTED correlation id 3 topic 'orders'"]
    );
}

#[test]
fn a_response_to_nothing_is_counted() {
    let mut wire = wire();
    wire.send(false, &produce_response(3, 99, "orders", 0));
    assert!(wire.out.is_empty());
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Kafka, FailureReason::UnmatchedResponse),
        1
    );
}

fn exchange_records(client_cuts: &[usize], server_cuts: &[usize]) -> Vec<String> {
    let mut wire = wire();
    let requests = [
        produce(9, 1, "orders", b"abc"),
        fetch(12, 2, "orders"),
        produce(3, 3, "audit", b""),
    ]
    .concat();
    let responses = [
        produce_response(9, 1, "orders", 0),
        fetch_response(12, 2, "orders", 0, 3),
        produce_response(3, 3, "audit", 2),
    ]
    .concat();
    wire.send_cut(true, &requests, client_cuts);
    wire.wait_ms(2);
    wire.send_cut(false, &responses, server_cuts);
    wire.out
        .iter()
        .map(|m| format!("{:?} {}", m.layer7(), m.summary()))
        .collect()
}

proptest! {
    #[test]
    fn any_segmentation_yields_the_same_records(
        client_cuts in proptest::collection::vec(0usize..250, 0..12),
        server_cuts in proptest::collection::vec(0usize..200, 0..12),
    ) {
        let whole = exchange_records(&[], &[]);
        prop_assert_eq!(whole.len(), 6);
        prop_assert_eq!(exchange_records(&client_cuts, &server_cuts), whole);
    }
}
