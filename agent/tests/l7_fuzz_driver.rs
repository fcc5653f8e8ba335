//! Runs the fuzz targets' conversation driver (`fuzz/fuzz_targets/support/segments.rs`)
//! on random inputs, so its invariants are checked on every test run and the driver keeps
//! compiling without the nightly fuzz toolchain. The real fuzzing is `fuzz/run-short.sh`.

use proptest::prelude::*;
use sightline_agent::l7::L7Protocol;

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
