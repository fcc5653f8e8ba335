//! HTTP records through the decoder as readers see them: the header list built only when
//! read but identical on every path (materialised flow, wire encoding, filters), and the
//! request's `traceparent` as `trace_context` on both flows, up to the `httpV2` exemplar.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use prometheus_client::registry::Registry;
use prost::Message;
use sightline_bpf_common::{FlowEvent, IPPROTO_TCP, L7_MAX_CAPTURE, L7Event, hook, kind, l7_protocol};
use sightline_common::metrics_server::{Format, encode};
use sightline_proto::flow::{Flow, FlowFilter, HttpHeader, layer7};

use super::super::{Decoder, DropReasonNames};
use crate::event::Event;
use crate::flow_record::FlowRecord;
use crate::metrics::options::parse_list;
use crate::metrics::{FlowFamilies, FlowMetrics};
use crate::observer::filter::compile;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const REQUEST: &[u8] = b"GET /cart HTTP/1.1\r\nHost: shop\r\nx-b3-sampled: 1\r\n\
traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nAccept: */*\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nServer: envoy\r\n\r\n";

fn segment(payload: &[u8], from_client: bool, tcp_seq: u32, timestamp_ns: u64) -> Vec<u8> {
    let mut flow = FlowEvent {
        kind: kind::L7,
        timestamp_ns,
        ..FlowEvent::default()
    };
    let (client, server) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (src, dst, sport, dport) = if from_client {
        (client, server, 40000, 80)
    } else {
        (server, client, 80, 40000)
    };
    flow.key.src_addr[..4].copy_from_slice(&src);
    flow.key.dst_addr[..4].copy_from_slice(&dst);
    flow.key.src_port = sport;
    flow.key.dst_port = dport;
    flow.key.protocol = IPPROTO_TCP;
    flow.key.ip_version = 4;
    flow.key.hook = hook::TC_INGRESS;
    let mut event = L7Event {
        flow,
        tcp_seq,
        payload_len: payload.len() as u32,
        captured_len: payload.len() as u16,
        protocol: l7_protocol::HTTP1,
        from_client: u8::from(from_client),
        _pad: 0,
        payload: [0; L7_MAX_CAPTURE],
    };
    event.payload[..payload.len()].copy_from_slice(payload);
    sightline_bpf_common::record_bytes(&event).to_vec()
}

/// The request and response flows the decoder makes of one exchange.
fn exchange(request: &[u8]) -> Vec<FlowRecord> {
    let mut decoder = Decoder::new("node-1".to_owned(), DropReasonNames::new(HashMap::new()));
    let mut flows = Vec::new();
    for record in [segment(request, true, 1, 1_000), segment(RESPONSE, false, 1, 3_000_000)] {
        decoder
            .decode_each(&record, &mut |event| match event {
                Event::Flow(flow) => flows.push(*flow),
                other => panic!("not a flow: {other:?}"),
            })
            .unwrap();
    }
    assert_eq!(flows.len(), 2, "a request and its response");
    flows
}

fn trace_id(flow: &Flow) -> Option<&str> {
    Some(flow.trace_context.as_ref()?.parent.as_ref()?.trace_id.as_str())
}

fn headers(flow: &Flow) -> Vec<(&str, &str)> {
    match flow.l7.as_ref().and_then(|l7| l7.record.as_ref()) {
        Some(layer7::Record::Http(http)) => http
            .headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_str()))
            .collect(),
        other => panic!("not HTTP: {other:?}"),
    }
}

#[test]
fn the_requests_trace_id_is_on_the_request_and_its_response() {
    let flows = exchange(REQUEST);
    for record in &flows {
        assert_eq!(trace_id(&record.to_flow()), Some(TRACE_ID));
    }
    // An upper-case id is not one the propagator Hubble uses accepts.
    let upper = String::from_utf8(REQUEST.to_vec())
        .unwrap()
        .replace(TRACE_ID, &TRACE_ID.to_uppercase());
    for record in exchange(upper.as_bytes()) {
        assert_eq!(record.to_flow().trace_context, None);
    }
}

#[test]
fn the_header_list_is_the_same_on_every_path_a_reader_takes() {
    let flows = exchange(REQUEST);
    let request = flows[0].to_flow();
    assert_eq!(
        headers(&request),
        [
            ("Accept", "*/*"),
            ("Host", "shop"),
            ("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            ("X-B3-Sampled", "1"),
        ]
    );
    assert_eq!(
        headers(&flows[1].to_flow()),
        [("Content-Length", "0"), ("Server", "envoy")]
    );
    for record in &flows {
        let materialised = record.to_flow();
        let mut wire = prost::bytes::BytesMut::new();
        record.encode_as_flow(1, &mut wire);
        let mut reference = Vec::new();
        prost::encoding::message::encode(1, &materialised, &mut reference);
        assert_eq!(wire.len(), reference.len(), "no field written twice");
        let response = sightline_proto::observer::GetFlowsResponse::decode(&wire[..]).unwrap();
        let Some(sightline_proto::observer::get_flows_response::ResponseTypes::Flow(decoded)) = response.response_types
        else {
            panic!("no flow in {response:?}")
        };
        assert_eq!(decoded, materialised);
        assert_eq!(record.layer7().as_deref(), materialised.l7.as_deref());
    }
}

#[test]
fn http_header_filters_see_the_deferred_list() {
    let flows = exchange(REQUEST);
    let filter = |key: &str, value: &str| {
        compile(&FlowFilter {
            http_header: vec![HttpHeader {
                key: key.into(),
                value: value.into(),
            }],
            ..FlowFilter::default()
        })
        .unwrap()
    };
    assert!(filter("X-B3-Sampled", "1").matches_flow(&flows[0]));
    assert!(!filter("X-B3-Sampled", "1").matches_flow(&flows[1]));
    assert!(filter("Server", "envoy").matches_flow(&flows[1]));
    assert!(!filter("Server", "nginx").matches_flow(&flows[1]));
}

#[test]
fn a_parsed_traceparent_is_the_http_v2_exemplar() {
    let mut metrics = FlowMetrics::new(&parse_list(&["httpV2:exemplars=true"]).unwrap(), 100).unwrap();
    for record in exchange(REQUEST) {
        metrics.process(&record);
    }
    let families = FlowFamilies::default();
    families.replace(metrics.collectors());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families));
    let text = encode(&registry, Format::OpenMetrics);
    let count = text
        .lines()
        .find(|line| line.starts_with("hubble_http_requests_total{"))
        .unwrap_or_else(|| panic!("no request count in\n{text}"));
    assert!(count.contains(&format!(r#"# {{traceID="{TRACE_ID}"}} 1"#)), "{count}");
    assert!(count.contains(r#"status="200""#), "{count}");
}
