use proptest::prelude::*;
use sightline_proto::flow::L7FlowType;

use super::test_support::{Wire, flow_type, http_of};
use super::{FailureReason, L7Protocol, L7Settings, Redaction};

const GET_INDEX: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: shop.svc\r\nUser-Agent: curl/8.5\r\nAccept: */*\r\n\r\n";
const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";

fn wire() -> Wire {
    Wire::new(L7Protocol::Http1)
}

#[test]
fn request_and_response_become_hubble_records_with_latency() {
    let mut wire = wire();
    wire.send(true, GET_INDEX);
    wire.wait_ms(12);
    wire.send(false, OK_HELLO);

    assert_eq!(
        wire.summaries(),
        [
            "HTTP/1.1 GET http://shop.svc/index.html",
            "HTTP/1.1 200 12ms (GET http://shop.svc/index.html)"
        ]
    );
    let request = &wire.out[0];
    assert_eq!(flow_type(request), L7FlowType::Request);
    assert!(request.from_client);
    assert_eq!((request.client, request.server), (wire.client, wire.server));
    let http = http_of(request);
    assert_eq!(
        (http.method.as_str(), http.code, http.protocol.as_str()),
        ("GET", 0, "HTTP/1.1")
    );
    let keys: Vec<_> = http
        .headers
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(
        keys,
        [("Accept", "*/*"), ("Host", "shop.svc"), ("User-Agent", "curl/8.5")]
    );

    let response = &wire.out[1];
    assert_eq!(flow_type(response), L7FlowType::Response);
    assert!(!response.from_client);
    assert_eq!(response.layer7().latency_ns, 12_000_000);
    let http = http_of(response);
    assert_eq!((http.code, http.method.as_str()), (200, "GET"));
    assert_eq!(http.url, "http://shop.svc/index.html");
    assert_eq!(http.headers[0].key, "Content-Length");
}

#[test]
fn keep_alive_connection_pairs_each_response_with_its_request() {
    let mut wire = wire();
    wire.send(true, GET_INDEX);
    wire.send(false, OK_HELLO);
    wire.send(
        true,
        b"POST /orders HTTP/1.1\r\nHost: shop.svc\r\nContent-Length: 11\r\n\r\n{\"id\": 42}\n",
    );
    wire.send(false, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    wire.send(true, b"DELETE /orders/42 HTTP/1.1\r\nHost: shop.svc\r\n\r\n");
    wire.send(
        false,
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 3\r\n\r\nerr",
    );

    let codes: Vec<_> = wire
        .out
        .iter()
        .map(|m| (http_of(m).method.clone(), http_of(m).code))
        .collect();
    assert_eq!(
        codes,
        [
            ("GET".into(), 0),
            ("GET".into(), 200),
            ("POST".into(), 0),
            ("POST".into(), 404),
            ("DELETE".into(), 0),
            ("DELETE".into(), 500)
        ]
    );
    assert_eq!(wire.tracker.stats().total_failures(L7Protocol::Http1), 0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut wire = wire();
    let mut requests = Vec::new();
    for path in ["/a", "/b", "/c"] {
        requests.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    wire.send(true, &requests);
    let mut responses = Vec::new();
    for code in [200, 301, 503] {
        responses.extend_from_slice(format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nok").as_bytes());
    }
    wire.send(false, &responses);
    let responses: Vec<_> = wire
        .out
        .iter()
        .filter(|m| !m.from_client)
        .map(|m| (http_of(m).url.clone(), http_of(m).code))
        .collect();
    assert_eq!(
        responses,
        [
            ("http://h/a".into(), 200),
            ("http://h/b".into(), 301),
            ("http://h/c".into(), 503)
        ]
    );
}

#[test]
fn chunked_bodies_with_trailers_are_skipped_to_the_next_message() {
    let mut wire = wire();
    wire.send(true, b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
    wire.send(true, b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    wire.send(
        false,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    );
    wire.send(false, b"0\r\nX-Checksum: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
    assert_eq!(
        wire.summaries(),
        [
            "HTTP/1.1 POST http://h/up",
            "HTTP/1.1 GET http://h/next",
            "HTTP/1.1 200 0ms (POST http://h/up)",
            "HTTP/1.1 204 0ms (GET http://h/next)",
        ]
    );
    assert_eq!(wire.tracker.stats().total_failures(L7Protocol::Http1), 0);
}

#[test]
fn bodies_beyond_the_capture_limit_are_skipped_by_length() {
    let mut wire = wire();
    wire.send(true, b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n");
    let body = vec![b'x'; 10_000];
    let mut first = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n".to_vec();
    first.extend_from_slice(&body[..1_400]);
    wire.send_captured(false, &first, 512);
    for part in body[1_400..].chunks(1_448) {
        wire.send_captured(false, part, 512);
    }
    wire.send(true, b"GET /small HTTP/1.1\r\nHost: h\r\n\r\n");
    wire.send_captured(false, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 512);
    let codes: Vec<_> = wire
        .out
        .iter()
        .filter(|m| !m.from_client)
        .map(|m| http_of(m).code)
        .collect();
    assert_eq!(codes, [200, 404]);
    assert_eq!(wire.tracker.stats().total_failures(L7Protocol::Http1), 0);
}

#[test]
fn chunked_body_beyond_the_capture_limit_is_skipped_inside_a_large_chunk() {
    let mut wire = wire();
    wire.send(true, b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n");
    let mut segment = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n".to_vec();
    segment.extend(std::iter::repeat_n(b'y', 4096));
    segment.extend_from_slice(b"\r\n0\r\n\r\n");
    wire.send_captured(false, &segment, 300);
    // The end of the body was inside the uncaptured tail: the parser resynchronises at
    // the next response, and the pairing stays right.
    wire.send(true, b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n");
    wire.send(false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let urls: Vec<_> = wire
        .out
        .iter()
        .filter(|m| !m.from_client)
        .map(|m| http_of(m).url.clone())
        .collect();
    assert_eq!(urls, ["http://h/stream", "http://h/after"]);
}

#[test]
fn garbage_is_counted_and_parsing_resumes_at_the_next_request_line() {
    let mut wire = wire();
    wire.send(
        true,
        b"\x16\x03\x01\x02\x00garbage\r\nmore garbage\r\nGET /ok HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    assert_eq!(wire.summaries(), ["HTTP/1.1 GET http://h/ok"]);
    let stats = wire.tracker.stats();
    assert_eq!(stats.failures(L7Protocol::Http1, FailureReason::Malformed), 1);
    assert_eq!(stats.failures(L7Protocol::Http1, FailureReason::Resync), 1);
}

#[test]
fn a_head_cut_by_the_capture_is_lost_and_counted_without_breaking_the_pairing() {
    let mut wire = wire();
    let long_header = format!("GET /lost HTTP/1.1\r\nHost: h\r\nCookie: {}\r\n\r\n", "c".repeat(900));
    wire.send_captured(true, long_header.as_bytes(), 512);
    wire.send(true, b"GET /seen HTTP/1.1\r\nHost: h\r\n\r\n");
    wire.send(false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    wire.send(false, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        wire.summaries(),
        ["HTTP/1.1 GET http://h/seen", "HTTP/1.1 201 0ms (GET http://h/seen)"]
    );
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Http1, FailureReason::GapInHead),
        1
    );
}

#[test]
fn duplicated_and_retransmitted_segments_produce_one_record() {
    let mut wire = wire();
    let seq = wire.seq[0];
    wire.send(true, GET_INDEX);
    // The same segment seen at the second veth, then a retransmission overlapping its end.
    wire.segment_at(true, seq, GET_INDEX, GET_INDEX.len(), false);
    wire.segment_at(true, seq + 10, &GET_INDEX[10..], GET_INDEX.len(), false);
    wire.send(false, OK_HELLO);
    assert_eq!(wire.out.len(), 2);
    assert_eq!(wire.tracker.stats().duplicate_segments(), 2);
}

#[test]
fn head_responses_and_interim_responses_carry_no_body() {
    let mut wire = wire();
    wire.send(true, b"HEAD /file HTTP/1.1\r\nHost: h\r\n\r\nPUT /file HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi");
    wire.send(
        false,
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    let responses: Vec<_> = wire
        .out
        .iter()
        .filter(|m| !m.from_client)
        .map(|m| (http_of(m).method.clone(), http_of(m).code, http_of(m).protocol.clone()))
        .collect();
    assert_eq!(
        responses,
        [
            ("HEAD".into(), 200, "HTTP/1.1".into()),
            ("PUT".into(), 201, "HTTP/1.0".into())
        ]
    );
}

#[test]
fn a_response_without_a_request_is_counted_not_emitted() {
    let mut wire = wire();
    wire.send(false, OK_HELLO);
    assert!(wire.out.is_empty());
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Http1, FailureReason::UnmatchedResponse),
        1
    );
}

#[test]
fn unanswered_requests_are_counted_when_the_connection_ends() {
    let mut wire = wire();
    wire.send(true, GET_INDEX);
    wire.close();
    assert_eq!(
        wire.tracker
            .stats()
            .failures(L7Protocol::Http1, FailureReason::UnansweredRequest),
        1
    );
    assert_eq!(wire.tracker.connections(), 0);
}

#[test]
fn query_and_password_are_redacted_in_records_and_summaries() {
    let mut wire = wire();
    wire.send(
        true,
        b"GET http://u:pw@proxy.svc/search?q=secret HTTP/1.1\r\nHost: proxy.svc\r\nAuthorization: Bearer t\r\n\r\n",
    );
    wire.send(false, OK_HELLO);
    assert_eq!(
        wire.summaries()[0],
        "HTTP/1.1 GET http://u:HUBBLE_REDACTED@proxy.svc/search"
    );
    assert_eq!(http_of(&wire.out[1]).url, "http://u:HUBBLE_REDACTED@proxy.svc/search");

    let settings = L7Settings {
        redaction: Redaction {
            url_query: false,
            headers_deny: vec!["authorization".into()],
            ..Redaction::default()
        },
        ..L7Settings::default()
    };
    let mut wire = Wire::with_settings(L7Protocol::Http1, settings);
    wire.send(
        true,
        b"GET /search?q=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n\r\n",
    );
    let http = http_of(&wire.out[0]);
    assert_eq!(http.url, "http://h/search?q=1");
    assert_eq!(http.headers[0].value, "HUBBLE_REDACTED");
}

#[test]
fn the_least_recently_used_connection_is_evicted_and_counted() {
    let settings = L7Settings {
        max_connections: 2,
        ..L7Settings::default()
    };
    let mut wires: Vec<Wire> = Vec::new();
    let mut tracker = super::L7Tracker::new(settings);
    for port in [1000, 1001, 1002] {
        let mut wire = wire();
        wire.client.set_port(port);
        std::mem::swap(&mut wire.tracker, &mut tracker);
        wire.send(true, GET_INDEX);
        std::mem::swap(&mut wire.tracker, &mut tracker);
        wires.push(wire);
    }
    assert_eq!(tracker.connections(), 2);
    assert_eq!(tracker.stats().evicted_connections(), 1);
    assert_eq!(tracker.stats().failures(L7Protocol::Http1, FailureReason::Evicted), 1);
    // The first connection is gone: its response finds no request.
    std::mem::swap(&mut wires[0].tracker, &mut tracker);
    wires[0].send(false, OK_HELLO);
    std::mem::swap(&mut wires[0].tracker, &mut tracker);
    assert_eq!(wires[0].out.len(), 1);
}

/// A keep-alive exchange of several requests and responses of every framing.
fn exchange() -> (Vec<u8>, Vec<u8>) {
    let requests = [
        &b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"[..],
        b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody",
        b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
    ]
    .concat();
    let responses = [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"[..],
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
        b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n",
    ]
    .concat();
    (requests, responses)
}

fn records_of(requests: &[u8], request_cuts: &[usize], responses: &[u8], response_cuts: &[usize]) -> Vec<String> {
    let mut wire = wire();
    wire.send_cut(true, requests, request_cuts);
    wire.wait_ms(7);
    wire.send_cut(false, responses, response_cuts);
    wire.out
        .iter()
        .map(|m| format!("{:?} {}", m.layer7(), m.summary()))
        .collect()
}

proptest! {
    #[test]
    fn any_segmentation_yields_the_same_records(
        request_cuts in proptest::collection::vec(0usize..200, 0..12),
        response_cuts in proptest::collection::vec(0usize..150, 0..12),
    ) {
        let (requests, responses) = exchange();
        let whole = records_of(&requests, &[], &responses, &[]);
        prop_assert_eq!(whole.len(), 6);
        prop_assert_eq!(records_of(&requests, &request_cuts, &responses, &response_cuts), whole);
    }
}

#[test]
fn the_requests_traceparent_gives_both_records_their_trace_id() {
    let mut wire = Wire::new(L7Protocol::Http1);
    wire.send(
        true,
        b"GET /a HTTP/1.1\r\nHost: h\r\nTraceParent:  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 \r\n\r\n",
    );
    wire.send(false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    wire.send(
        true,
        b"GET /b HTTP/1.1\r\nHost: h\r\ntraceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n\r\n",
    );
    wire.send(false, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let ids: Vec<_> = wire.out.iter().map(|m| m.trace_id.as_deref()).collect();
    let id = Some("4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(ids, [id, id, None, None]);
}
