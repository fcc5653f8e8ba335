use loona_hpack::Encoder;
use proptest::prelude::*;
use sightline_proto::flow::L7FlowType;

use super::detect::HTTP2_PREFACE;
use super::test_support::{Wire, flow_type, http_of};
use super::{FailureReason, L7Protocol};

const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn headers(encoder: &mut Encoder<'_>, flags: u8, stream_id: u32, fields: &[(&str, &str)]) -> Vec<u8> {
    let block = encoder.encode(fields.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
    frame(1, flags | END_HEADERS, stream_id, &block)
}

fn data(flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    frame(0, flags, stream_id, payload)
}

const SETTINGS_EMPTY: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Both directions of a gRPC connection with encoders that keep their dynamic tables.
struct Grpc {
    client: Encoder<'static>,
    server: Encoder<'static>,
}

impl Grpc {
    fn new() -> Self {
        Self {
            client: Encoder::new(),
            server: Encoder::new(),
        }
    }

    fn request(&mut self, stream_id: u32, method: &str) -> Vec<u8> {
        let path = format!("/shop.Orders/{method}");
        let mut bytes = headers(
            &mut self.client,
            0,
            stream_id,
            &[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", &path),
                (":authority", "orders.shop.svc:50051"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ],
        );
        bytes.extend(data(END_STREAM, stream_id, b"\0\0\0\0\x02\x08\x01"));
        bytes
    }

    fn response(&mut self, stream_id: u32, grpc_status: &str) -> Vec<u8> {
        let mut bytes = headers(
            &mut self.server,
            0,
            stream_id,
            &[(":status", "200"), ("content-type", "application/grpc")],
        );
        bytes.extend(data(0, stream_id, b"\0\0\0\0\x02\x08\x01"));
        bytes.extend(headers(
            &mut self.server,
            END_STREAM,
            stream_id,
            &[("grpc-status", grpc_status), ("grpc-message", "")],
        ));
        bytes
    }
}

fn started() -> (Wire, Grpc) {
    let mut wire = Wire::new(L7Protocol::Http2);
    let mut preface = HTTP2_PREFACE.to_vec();
    preface.extend_from_slice(&SETTINGS_EMPTY);
    wire.send(true, &preface);
    wire.send(false, &SETTINGS_EMPTY);
    (wire, Grpc::new())
}

#[test]
fn grpc_call_yields_request_and_response_with_grpc_status_trailer() {
    let (mut wire, mut grpc) = started();
    let request = grpc.request(1, "Get");
    wire.send(true, &request);
    wire.wait_ms(3);
    let response = grpc.response(1, "0");
    wire.send(false, &response);

    assert_eq!(
        wire.summaries(),
        [
            "HTTP/2 POST http://orders.shop.svc:50051/shop.Orders/Get",
            "HTTP/2 200 3ms (POST http://orders.shop.svc:50051/shop.Orders/Get)"
        ]
    );
    assert_eq!(flow_type(&wire.out[1]), L7FlowType::Response);
    assert_eq!(wire.out[1].layer7().latency_ns, 3_000_000);
    let (request, response) = (http_of(&wire.out[0]), http_of(&wire.out[1]));
    let request_headers: Vec<_> = request.headers.iter().map(|h| h.key.as_str()).collect();
    assert_eq!(request_headers, ["Content-Type", "Te"]);
    let response_headers: Vec<_> = response
        .headers
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(
        response_headers,
        [
            ("Content-Type", "application/grpc"),
            ("Grpc-Message", ""),
            ("Grpc-Status", "0")
        ]
    );
}

#[test]
fn dynamic_table_carries_over_between_calls_and_streams_interleave() {
    let (mut wire, mut grpc) = started();
    let first = grpc.request(1, "Get");
    let second = grpc.request(3, "List");
    wire.send(true, &[first, second].concat());
    let late = grpc.response(3, "5");
    let early = grpc.response(1, "0");
    wire.send(false, &[late, early].concat());
    let responses: Vec<_> = wire
        .out
        .iter()
        .filter(|m| !m.from_client)
        .map(|m| {
            let http = http_of(m);
            let status = http
                .headers
                .iter()
                .find(|h| h.key == "Grpc-Status")
                .map(|h| h.value.clone());
            (http.url.rsplit('/').next().unwrap_or_default().to_owned(), status)
        })
        .collect();
    assert_eq!(
        responses,
        [
            ("List".to_owned(), Some("5".to_owned())),
            ("Get".to_owned(), Some("0".to_owned()))
        ]
    );
    assert_eq!(wire.tracker.stats().total_failures(L7Protocol::Http2), 0);
}

#[test]
fn huffman_coded_blocks_with_indexed_dynamic_entries_decode() {
    // RFC 7541 appendix C.4.1 and C.4.2: Huffman-coded requests, the second indexing the
    // dynamic-table entry the first one added.
    let (mut wire, _) = started();
    let first = [
        0x82, 0x86, 0x84, 0x41, 0x8c, 0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
    ];
    let second = [0x82, 0x86, 0x84, 0xbe, 0x58, 0x86, 0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf];
    wire.send(true, &frame(1, END_HEADERS | END_STREAM, 1, &first));
    wire.send(true, &frame(1, END_HEADERS | END_STREAM, 3, &second));
    assert_eq!(
        wire.summaries(),
        [
            "HTTP/2 GET http://www.example.com/",
            "HTTP/2 GET http://www.example.com/"
        ]
    );
    let second_headers = &http_of(&wire.out[1]).headers;
    assert_eq!(
        (second_headers[0].key.as_str(), second_headers[0].value.as_str()),
        ("Cache-Control", "no-cache")
    );
}

#[test]
fn header_block_split_into_continuation_frames_decodes() {
    let (mut wire, mut grpc) = started();
    let block = grpc.client.encode(
        [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/split"),
            (":authority", "a.svc"),
        ]
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes())),
    );
    let (head, tail) = block.split_at(block.len() / 2);
    wire.send(
        true,
        &[frame(1, END_STREAM, 1, head), frame(9, END_HEADERS, 1, tail)].concat(),
    );
    assert_eq!(wire.summaries(), ["HTTP/2 GET https://a.svc/split"]);
}

#[test]
fn trailers_only_error_response_ends_the_call() {
    let (mut wire, mut grpc) = started();
    let request = grpc.request(1, "Get");
    wire.send(true, &request);
    let response = headers(
        &mut grpc.server,
        END_STREAM,
        1,
        &[
            (":status", "200"),
            ("grpc-status", "14"),
            ("grpc-message", "unavailable"),
        ],
    );
    wire.send(false, &response);
    let http = http_of(&wire.out[1]);
    assert_eq!(http.code, 200);
    assert!(http.headers.iter().any(|h| h.key == "Grpc-Status" && h.value == "14"));
}

#[test]
fn data_beyond_the_capture_limit_is_skipped() {
    let (mut wire, mut grpc) = started();
    let request = grpc.request(1, "Upload");
    wire.send(true, &request);
    let mut response = headers(&mut grpc.server, 0, 1, &[(":status", "200")]);
    response.extend(data(0, 1, &vec![7; 12_000]));
    for part in response.chunks(1_448) {
        wire.send_captured(false, part, 256);
    }
    let trailers = headers(&mut grpc.server, END_STREAM, 1, &[("grpc-status", "0")]);
    wire.send(false, &trailers);
    assert_eq!(wire.out.len(), 2);
    assert_eq!(http_of(&wire.out[1]).code, 200);
    assert_eq!(wire.tracker.stats().total_failures(L7Protocol::Http2), 0);
}

/// hyper and Go send the server's SETTINGS on accept, so at the client's veth it can
/// arrive before the client's preface has left; the connection must still be followed.
#[test]
fn server_settings_seen_before_the_client_preface_still_follows_the_connection() {
    let mut wire = Wire::new(L7Protocol::Http2);
    wire.send(false, &SETTINGS_EMPTY);
    let mut preface = HTTP2_PREFACE.to_vec();
    preface.extend_from_slice(&SETTINGS_EMPTY);
    wire.send(true, &preface);
    let mut grpc = Grpc::new();
    let request = grpc.request(1, "Get");
    wire.send(true, &request);
    let response = grpc.response(1, "5");
    wire.send(false, &response);
    assert_eq!(wire.out.len(), 2, "{:?}", wire.summaries());
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Http2, FailureReason::MidConnection),
        0
    );
}

#[test]
fn connection_joined_mid_stream_is_counted_once_and_skipped() {
    let mut wire = Wire::new(L7Protocol::Http2);
    let mut grpc = Grpc::new();
    for stream_id in [1, 3, 5] {
        let request = grpc.request(stream_id, "Get");
        wire.send(true, &request);
        let response = grpc.response(stream_id, "0");
        wire.send(false, &response);
    }
    assert!(wire.out.is_empty());
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Http2, FailureReason::MidConnection),
        1
    );
}

#[test]
fn a_header_block_lost_in_the_capture_stops_decoding_once() {
    let (mut wire, mut grpc) = started();
    let request = grpc.request(1, "Get");
    wire.send(true, &request);
    let mut response = headers(
        &mut grpc.server,
        0,
        1,
        &[(":status", "200"), ("x-padding", &"p".repeat(400))],
    );
    response.extend(data(END_STREAM, 1, b"x"));
    wire.send_captured(false, &response, 100);
    let later = grpc.request(3, "Get");
    wire.send(true, &later);
    assert_eq!(wire.out.len(), 1);
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Http2, FailureReason::GapInHead),
        1
    );
    // The call whose response was lost is counted as unanswered; nothing else is.
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Http2, FailureReason::UnansweredRequest),
        1
    );
    assert_eq!(wire.tracker.stats().total_failures(L7Protocol::Http2), 2);
}

#[test]
fn a_bad_hpack_block_is_counted_and_never_panics() {
    let (mut wire, _) = started();
    // Index 0 is never valid; 0xff... is an integer overflow.
    wire.send(true, &frame(1, END_HEADERS, 1, &[0x80]));
    wire.send(
        true,
        &frame(1, END_HEADERS, 3, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    );
    assert!(wire.out.is_empty());
    assert_eq!(
        wire.tracker.stats().failures(L7Protocol::Http2, FailureReason::Hpack),
        1
    );
}

fn call_records(client_cuts: &[usize], server_cuts: &[usize]) -> Vec<String> {
    let (mut wire, mut grpc) = started();
    let requests = [grpc.request(1, "A"), grpc.request(3, "B")].concat();
    let responses = [grpc.response(1, "0"), grpc.response(3, "2")].concat();
    wire.send_cut(true, &requests, client_cuts);
    wire.wait_ms(1);
    wire.send_cut(false, &responses, server_cuts);
    wire.out
        .iter()
        .map(|m| format!("{:?} {}", m.layer7(), m.summary()))
        .collect()
}

proptest! {
    #[test]
    fn any_segmentation_yields_the_same_records(
        client_cuts in proptest::collection::vec(0usize..260, 0..12),
        server_cuts in proptest::collection::vec(0usize..200, 0..12),
    ) {
        let whole = call_records(&[], &[]);
        prop_assert_eq!(whole.len(), 4);
        prop_assert_eq!(call_records(&client_cuts, &server_cuts), whole);
    }
}

#[test]
fn the_requests_traceparent_gives_both_records_their_trace_id() {
    let (mut wire, mut grpc) = started();
    let traced = |grpc: &mut Grpc, stream_id: u32, traceparent: &str| {
        headers(
            &mut grpc.client,
            END_STREAM,
            stream_id,
            &[
                (":method", "POST"),
                (":scheme", "http"),
                (":path", "/shop.Orders/Get"),
                (":authority", "orders"),
                ("traceparent", traceparent),
                ("traceparent", "00-11111111111111111111111111111111-2222222222222222-01"),
            ],
        )
    };
    let request = traced(&mut grpc, 1, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    wire.send(true, &request);
    let response = grpc.response(1, "0");
    wire.send(false, &response);
    // The first value counts, as Go's `Header.Get` picks it; an invalid one gives none.
    let request = traced(&mut grpc, 3, "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01");
    wire.send(true, &request);
    let response = grpc.response(3, "0");
    wire.send(false, &response);
    let ids: Vec<_> = wire.out.iter().map(|m| m.trace_id.as_deref()).collect();
    let id = Some("4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(ids, [id, id, None, None]);
    let request_headers = http_of(&wire.out[0]).headers;
    assert_eq!(
        request_headers.iter().filter(|h| h.key == "Traceparent").count(),
        2,
        "the header itself stays in the list"
    );
}
