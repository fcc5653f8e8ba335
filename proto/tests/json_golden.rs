//! JSON must be byte-for-byte what `hubble observe -o json` prints once parsed:
//! protojson with proto field names, enum names, RFC 3339 times, 64-bit integers as
//! strings and unwrapped wrappers.
//!
//! The golden file was not written by us: `golden/regen.py` decodes our binary
//! encoding of the fixture with the upstream descriptor set and prints it with
//! Google's protobuf `json_format` (the same protojson rules as Go's). Regenerate
//! after changing the fixture:
//!   SIGHTLINE_WRITE_GOLDEN=1 cargo test -p sightline-proto --test json_golden
//!   python3 proto/tests/golden/regen.py

#![allow(deprecated)] // Hubble still fills the deprecated Summary field; so do the fixtures.
use std::path::Path;

use prost::Message;
use sightline_proto::flow::{
    self, AgentEventType, CiliumEventType, Dns, DropReason, Emitter, Endpoint, Ethernet, Flow, FlowType, Http,
    HttpHeader, Ip, IpVersion, L7FlowType, Layer4, Layer7, NetworkInterface, Policy, Service, Tcp, TcpFlags,
    TraceObservationPoint, TrafficDirection, Verdict, Workload, layer4, layer7,
};
use sightline_proto::observer::{GetFlowsResponse, get_flows_response};
use sightline_proto::wkt::{BoolValue, Timestamp};

fn endpoint(id: u32, identity: u32, namespace: &str, pod: &str, app: &str, workload: (&str, &str)) -> Endpoint {
    Endpoint {
        id,
        identity,
        cluster_name: "default".into(),
        namespace: namespace.into(),
        labels: vec![
            format!("k8s:app={app}"),
            format!("k8s:io.kubernetes.pod.namespace={namespace}"),
        ],
        pod_name: pod.into(),
        workloads: vec![Workload {
            name: workload.0.into(),
            kind: workload.1.into(),
        }],
    }
}

fn fully_populated() -> GetFlowsResponse {
    let time = Timestamp {
        seconds: 1_764_064_800,
        nanos: 123_456_789,
    };
    let flow = Flow {
        time: Some(time),
        uuid: "0b9c7a0e-5a7f-4a8e-9a55-6f1c2f6f3d11".into(),
        emitter: Some(Box::new(Emitter {
            name: "Hubble".into(),
            version: "1.19.4".into(),
        })),
        verdict: Verdict::Forwarded.into(),
        drop_reason_desc: DropReason::PolicyDenied.into(),
        ethernet: Some(Box::new(Ethernet {
            source: "0a:58:0a:f4:00:05".into(),
            destination: "0a:58:0a:f4:00:01".into(),
        })),
        ip: Some(Ip {
            source: "10.244.0.5".into(),
            destination: "10.96.0.10".into(),
            source_xlated: "10.244.0.5".into(),
            ip_version: IpVersion::IPv4.into(),
            encrypted: false,
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(Tcp {
                source_port: 43_210,
                destination_port: 8080,
                flags: Some(TcpFlags {
                    psh: true,
                    ack: true,
                    ..TcpFlags::default()
                }),
            })),
        }),
        source: Some(Box::new(endpoint(
            1234,
            54_321,
            "shop",
            "frontend-7d9c-x2x",
            "frontend",
            ("frontend", "Deployment"),
        ))),
        destination: Some(Box::new(endpoint(
            77,
            40_000,
            "shop",
            "cart-0",
            "cart",
            ("cart", "StatefulSet"),
        ))),
        r#type: FlowType::L7.into(),
        node_name: "default/node-a".into(),
        node_labels: vec!["kubernetes.io/hostname=node-a".into()],
        source_names: vec!["frontend.shop.svc.cluster.local".into()],
        destination_names: vec!["cart.shop.svc.cluster.local".into(), "api.example.com".into()],
        l7: Some(Box::new(Layer7 {
            r#type: L7FlowType::Response.into(),
            latency_ns: 18_446_744_073_709_551_615,
            record: Some(layer7::Record::Http(Http {
                code: 200,
                method: "GET".into(),
                url: "http://cart.shop:8080/items?id=7".into(),
                protocol: "HTTP/1.1".into(),
                headers: vec![HttpHeader {
                    key: "x-request-id".into(),
                    value: "abc".into(),
                }],
            })),
        })),
        event_type: Some(CiliumEventType {
            r#type: 129,
            sub_type: 0,
        }),
        source_service: Some(Box::new(Service {
            name: "frontend".into(),
            namespace: "shop".into(),
        })),
        destination_service: Some(Box::new(Service {
            name: "cart".into(),
            namespace: "shop".into(),
        })),
        traffic_direction: TrafficDirection::Egress.into(),
        trace_observation_point: TraceObservationPoint::ToEndpoint.into(),
        is_reply: Some(BoolValue { value: false }),
        interface: Some(NetworkInterface {
            index: 7,
            name: "lxc12ab".into(),
        }),
        socket_cookie: 9_007_199_254_740_993,
        summary: "HTTP/1.1 200 18ms (GET http://cart.shop:8080/items?id=7)".into(),
        egress_allowed_by: vec![Policy {
            name: "allow-cart".into(),
            namespace: "shop".into(),
            labels: vec!["k8s:io.cilium.k8s.policy.name=allow-cart".into()],
            revision: 42,
            kind: "NetworkPolicy".into(),
        }],
        ..Flow::default()
    };
    GetFlowsResponse {
        response_types: Some(get_flows_response::ResponseTypes::Flow(flow)),
        node_name: "default/node-a".into(),
        time: Some(time),
    }
}

/// A DNS flow exercises the other L7 record and the repeated DNS fields.
fn dns_response() -> GetFlowsResponse {
    let dns = Dns {
        query: "cart.shop.svc.cluster.local.".into(),
        ips: vec!["10.96.12.4".into(), "fd00::4".into()],
        ttl: 30,
        cnames: vec!["cart-alias.shop.svc.cluster.local.".into()],
        observation_source: "proxy".into(),
        rcode: 0,
        qtypes: vec!["A".into()],
        rrtypes: vec!["A".into(), "CNAME".into()],
    };
    let flow = Flow {
        time: Some(Timestamp {
            seconds: 1_764_064_801,
            nanos: 500_000_000,
        }),
        verdict: Verdict::Dropped.into(),
        drop_reason_desc: DropReason::PolicyDenied.into(),
        r#type: FlowType::L7.into(),
        l7: Some(Box::new(Layer7 {
            r#type: L7FlowType::Response.into(),
            latency_ns: 250_000,
            record: Some(layer7::Record::Dns(dns)),
        })),
        is_reply: Some(BoolValue { value: true }),
        ..Flow::default()
    };
    GetFlowsResponse {
        response_types: Some(get_flows_response::ResponseTypes::Flow(flow)),
        node_name: "default/node-b".into(),
        time: Some(Timestamp {
            seconds: 1_764_064_801,
            nanos: 500_000_000,
        }),
    }
}

fn golden_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))
}

fn check_golden(name: &str, message: &GetFlowsResponse) {
    if std::env::var_os("SIGHTLINE_WRITE_GOLDEN").is_some() {
        std::fs::write(golden_dir().join(format!("{name}.binpb")), message.encode_to_vec()).expect("write binpb");
        return;
    }
    let path = golden_dir().join(format!("{name}.json"));
    let golden_text = std::fs::read_to_string(&path).expect("golden file");
    let golden: serde_json::Value = serde_json::from_str(&golden_text).expect("golden is JSON");

    let ours = serde_json::to_value(message).expect("serialise");
    assert_eq!(
        ours,
        golden,
        "our JSON:\n{}",
        serde_json::to_string_pretty(&ours).unwrap_or_default()
    );

    let parsed: GetFlowsResponse = serde_json::from_str(&golden_text).expect("golden parses back");
    assert_eq!(&parsed, message);
}

#[test]
fn http_flow_json_matches_protojson() {
    check_golden("get_flows_response_http", &fully_populated());
}

#[test]
fn dns_flow_json_matches_protojson() {
    check_golden("get_flows_response_dns", &dns_response());
}

#[test]
fn field_spellings_follow_the_proto_not_lower_camel_case() {
    let json = serde_json::to_value(fully_populated()).expect("serialise");
    let flow = &json["flow"];
    for key in [
        "IP",
        "l4",
        "Type",
        "Summary",
        "node_name",
        "is_reply",
        "drop_reason_desc",
    ] {
        assert!(flow.get(key).is_some(), "missing {key} in {flow}");
    }
    assert_eq!(flow["source"]["ID"], 1234);
    assert_eq!(flow["IP"]["ipVersion"], "IPv4");
    assert_eq!(flow["socket_cookie"], "9007199254740993", "64-bit integers are strings");
    assert_eq!(flow["is_reply"], false, "wrappers are unwrapped");
    assert_eq!(json["time"], "2025-11-25T10:00:00.123456789Z");
}

#[test]
fn agent_event_enum_names_round_trip() {
    let event = flow::AgentEvent {
        r#type: AgentEventType::EndpointCreated.into(),
        notification: None,
    };
    let json = serde_json::to_string(&event).expect("serialise");
    assert_eq!(json, r#"{"type":"ENDPOINT_CREATED"}"#);
    assert_eq!(serde_json::from_str::<flow::AgentEvent>(&json).expect("parse"), event);
}
