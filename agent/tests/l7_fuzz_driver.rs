//! Runs the fuzz targets' conversation driver (`fuzz/fuzz_targets/support/segments.rs`)
//! on random inputs, so its invariants are checked on every test run and the driver keeps
//! compiling without the nightly fuzz toolchain. The real fuzzing is `fuzz/run-short.sh`.

use std::path::Path;

use proptest::prelude::*;
// `l7` by name at the crate root: segments.rs reaches it as `crate::l7`.
use sightline_agent::l7::{self, L7Protocol};

#[path = "../../fuzz/fuzz_targets/support/segments.rs"]
mod segments;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Random bytes biased towards each protocol's syntax, so the parsers get past their
/// first checks often enough to matter.
fn conversation(seed: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        proptest::sample::select(seed).prop_map(<[u8]>::to_vec),
    ];
    proptest::collection::vec((any::<u8>(), piece), 0..12).prop_map(|segments| {
        let mut out = Vec::new();
        for (control, payload) in segments {
            out.push(control);
            out.push(payload.len() as u8);
            out.extend(payload);
        }
        out
    })
}

const HTTP1: &[&[u8]] = &[
    b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
];
const HTTP2: &[&[u8]] = &[
    &[0, 0, 0, 4, 0, 0, 0, 0, 0],
    &[0, 0, 5, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 0x80],
    &[0, 0, 1, 1, 4, 0, 0, 0, 1, 0x88],
    &[0, 0, 2, 0, 1, 0, 0, 0, 1, 1, 2],
    &[0, 0, 1, 9, 4, 0, 0, 0, 3, 0x82],
];
const KAFKA: &[&[u8]] = &[
    &[0, 0, 0, 14, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0xff, 0xff, 0, 1],
    &[0, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    &[0, 0, 0, 6, 0, 18, 0, 3, 0, 0],
];

proptest! {
    #[test]
    fn http1_conversations_never_break_the_invariants(data in conversation(HTTP1)) {
        segments::run(L7Protocol::Http1, b"", &data);
    }

    #[test]
    fn http2_conversations_never_break_the_invariants(data in conversation(HTTP2)) {
        segments::run(L7Protocol::Http2, PREFACE, &data);
    }

    #[test]
    fn kafka_conversations_never_break_the_invariants(data in conversation(KAFKA)) {
        segments::run(L7Protocol::Kafka, b"", &data);
    }
}

/// The records a committed seed (`fuzz/corpus/<target>/seed-<name>`) yields, as Summary texts.
fn seed_summaries(target: &str, name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
        .join(format!("seed-{name}"));
    let data = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let (protocol, prologue) = match target {
        "http1" => (L7Protocol::Http1, &b""[..]),
        "http2" => (L7Protocol::Http2, PREFACE),
        _ => (L7Protocol::Kafka, &b""[..]),
    };
    segments::run(protocol, prologue, &data)
        .into_iter()
        .map(|message| message.summary())
        .collect()
}

// The seeds start the CI's short fuzz run from valid exchanges: if the segment format or a
// parser drifts from them, the run would start from noise instead, so they are checked here.
#[test]
fn http1_seeds_are_complete_exchanges() {
    assert_eq!(
        seed_summaries("http1", "keepalive-get-200"),
        [
            "HTTP/1.1 GET http://backend:8080/api/orders",
            "HTTP/1.1 200 0ms (GET http://backend:8080/api/orders)",
            "HTTP/1.1 GET http://backend:8080/missing",
            "HTTP/1.1 404 0ms (GET http://backend:8080/missing)",
        ]
    );
    assert_eq!(
        seed_summaries("http1", "pipelined-split"),
        [
            "HTTP/1.1 GET http://h/a",
            "HTTP/1.1 HEAD http://h/b",
            "HTTP/1.1 200 0ms (GET http://h/a)",
            "HTTP/1.1 204 0ms (HEAD http://h/b)",
        ]
    );
    assert_eq!(
        seed_summaries("http1", "post-chunked-500"),
        [
            "HTTP/1.1 POST http://pay/api/pay",
            "HTTP/1.1 500 0ms (POST http://pay/api/pay)"
        ]
    );
}

#[test]
fn http2_seeds_are_complete_exchanges() {
    let call = "POST http://orders.shop.svc:50051/shop.Orders/Get";
    let request = format!("HTTP/2 {call}");
    let response = format!("HTTP/2 200 0ms ({call})");
    assert_eq!(
        seed_summaries("http2", "grpc-two-calls"),
        [&*request, &*response, &*request, &*response]
    );
    assert_eq!(
        seed_summaries("http2", "get-continuation-404"),
        [
            "HTTP/2 GET http://web:80/index.html",
            "HTTP/2 404 0ms (GET http://web:80/index.html)"
        ]
    );
    assert_eq!(
        seed_summaries("http2", "padded-priority-500"),
        ["HTTP/2 GET http://api/", "HTTP/2 500 0ms (GET http://api/)"]
    );
}

#[test]
fn kafka_seeds_are_complete_exchanges() {
    assert_eq!(
        seed_summaries("kafka", "produce-v7-fetch-v11"),
        [
            "Kafka request produce correlation id 1 topic 'orders'",
            "Kafka response produce correlation id 1 topic 'orders' return code 0",
            "Kafka request fetch correlation id 2 topic 'orders'",
            "Kafka response fetch correlation id 2 topic 'orders' return code 1",
        ]
    );
    assert_eq!(
        seed_summaries("kafka", "flexible-produce-v9-fetch-v12"),
        [
            "Kafka request produce correlation id 7 topic 'logs'",
            "Kafka request fetch correlation id 8 topic 'logs'",
            "Kafka response fetch correlation id 8 topic 'logs' return code 0",
            "Kafka response produce correlation id 7 topic 'logs' return code 3",
        ]
    );
    // Fetch v13+ names topics by id only.
    assert_eq!(
        seed_summaries("kafka", "fetch-v13-topic-id-split"),
        [
            "Kafka request fetch correlation id 5 topic ''",
            "Kafka response fetch correlation id 5 topic '' return code 0",
        ]
    );
    assert_eq!(
        seed_summaries("kafka", "metadata-and-apiversions"),
        [
            "Kafka request apiversions correlation id 1 topic ''",
            "Kafka response apiversions correlation id 1 topic '' return code 0",
            "Kafka request metadata correlation id 2 topic ''",
            "Kafka response metadata correlation id 2 topic '' return code 0",
        ]
    );
}
