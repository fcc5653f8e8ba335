//! One table row per FlowFilter field (Hubble's semantics), run through GetFlows
//! over the unix socket as a whitelist and, for the complement, as a blacklist.
#![allow(clippy::unwrap_used)]

mod support;

use sightline_proto::flow::{
    CiliumEventType, Dns, DropReason, Endpoint, EventTypeFilter, Flow, FlowFilter, Http, HttpHeader, IcmPv4, Ip,
    IpTraceId, IpVersion, Layer4, Layer7, NetworkInterface, Service, Tcp, TcpFlags, TraceContext, TraceParent,
    TrafficDirection, Udp, Verdict, Workload, layer4, layer7,
};
use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::wkt::BoolValue;
use support::{at, collect, start, uuids};

fn endpoint(ns: &str, pod: &str, identity: u32, labels: &[&str]) -> Option<Box<Endpoint>> {
    Some(Box::new(Endpoint {
        namespace: ns.into(),
        pod_name: pod.into(),
        identity,
        cluster_name: "c1".into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        ..Default::default()
    }))
}

fn tcp(src: u32, dst: u32, flags: TcpFlags) -> Option<Layer4> {
    Some(Layer4 {
        protocol: Some(layer4::Protocol::Tcp(Tcp {
            source_port: src,
            destination_port: dst,
            flags: Some(flags),
        })),
    })
}

fn ip(src: &str, dst: &str, version: IpVersion) -> Option<Ip> {
    Some(Ip {
        source: src.into(),
        destination: dst.into(),
        ip_version: version as i32,
        ..Default::default()
    })
}

fn flows() -> Vec<Flow> {
    let web = Flow {
        uuid: "web".into(),
        time: Some(at(1)),
        verdict: Verdict::Forwarded as i32,
        // A drop reason on a flow that was not dropped: drop_reason_desc must not match it.
        drop_reason_desc: DropReason::PolicyDenied as i32,
        ip: ip("10.0.0.1", "10.0.0.2", IpVersion::IPv4),
        l4: tcp(
            34567,
            80,
            TcpFlags {
                syn: true,
                ..Default::default()
            },
        ),
        source: endpoint("default", "web-1", 100, &["k8s:app=web", "k8s:tier=front"]),
        destination: Some(Box::new(Endpoint {
            workloads: vec![Workload {
                name: "api".into(),
                kind: "Deployment".into(),
            }],
            ..endpoint("shop", "api-1", 200, &["k8s:app=api"]).map(|e| *e).unwrap()
        })),
        destination_names: vec!["api.shop.svc.cluster.local".into()],
        destination_service: Some(Box::new(Service {
            name: "api".into(),
            namespace: "shop".into(),
        })),
        traffic_direction: TrafficDirection::Egress as i32,
        is_reply: Some(BoolValue { value: false }),
        node_name: "node-1".into(),
        node_labels: vec!["kubernetes.io/arch=amd64".into(), "zone=a".into()],
        event_type: Some(CiliumEventType { r#type: 4, sub_type: 3 }),
        interface: Some(NetworkInterface {
            index: 5,
            name: "eth0".into(),
        }),
        trace_context: Some(Box::new(TraceContext {
            parent: Some(TraceParent { trace_id: "abc".into() }),
        })),
        ip_trace_id: Some(IpTraceId {
            trace_id: 42,
            ip_option_type: 136,
        }),
        ..Default::default()
    };
    let dns = Flow {
        uuid: "dns".into(),
        time: Some(at(2)),
        verdict: Verdict::Forwarded as i32,
        ip: ip("10.0.0.3", "10.96.0.10", IpVersion::IPv4),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(Udp {
                source_port: 5353,
                destination_port: 53,
            })),
        }),
        source: Some(Box::new(Endpoint {
            workloads: vec![Workload {
                name: "coredns".into(),
                kind: "Deployment".into(),
            }],
            ..endpoint("kube-system", "coredns-abc", 300, &["k8s:k8s-app=kube-dns"])
                .map(|e| *e)
                .unwrap()
        })),
        destination: endpoint("default", "web-1", 100, &["k8s:app=web"]),
        source_names: vec!["kube-dns.kube-system.svc.cluster.local".into()],
        l7: Some(Box::new(Layer7 {
            record: Some(layer7::Record::Dns(Dns {
                query: "cilium.io.".into(),
                ..Default::default()
            })),
            ..Default::default()
        })),
        event_type: Some(CiliumEventType {
            r#type: 129,
            sub_type: 0,
        }),
        traffic_direction: TrafficDirection::Ingress as i32,
        is_reply: Some(BoolValue { value: true }),
        node_name: "node-1".into(),
        ..Default::default()
    };
    let http = Flow {
        uuid: "http".into(),
        time: Some(at(3)),
        verdict: Verdict::Forwarded as i32,
        ip: Some(Ip {
            source_xlated: "192.168.1.1".into(),
            encrypted: true,
            ..ip("fd00::1", "fd00::2", IpVersion::IPv6).unwrap()
        }),
        l4: tcp(
            40000,
            8080,
            TcpFlags {
                psh: true,
                ack: true,
                ..Default::default()
            },
        ),
        source: Some(Box::new(Endpoint {
            workloads: vec![Workload {
                name: "api".into(),
                kind: "StatefulSet".into(),
            }],
            ..endpoint("shop", "api-1", 200, &["k8s:app=api", "container:app=web"])
                .map(|e| *e)
                .unwrap()
        })),
        destination: Some(Box::new(Endpoint {
            cluster_name: "c2".into(),
            ..endpoint("shop", "db-0", 500, &["cidr:10.1.0.0/16"])
                .map(|e| *e)
                .unwrap()
        })),
        source_service: Some(Box::new(Service {
            name: "api".into(),
            namespace: "shop".into(),
        })),
        l7: Some(Box::new(Layer7 {
            record: Some(layer7::Record::Http(Http {
                code: 503,
                method: "get".into(),
                url: "http://api.shop/v1/items?x=1".into(),
                headers: vec![HttpHeader {
                    key: "x-env".into(),
                    value: "prod".into(),
                }],
                ..Default::default()
            })),
            ..Default::default()
        })),
        event_type: Some(CiliumEventType {
            r#type: 129,
            sub_type: 0,
        }),
        node_name: "prod/node-2".into(),
        ..Default::default()
    };
    let drop = Flow {
        uuid: "drop".into(),
        time: Some(at(4)),
        verdict: Verdict::Dropped as i32,
        drop_reason_desc: DropReason::PolicyDenied as i32,
        ip: ip("10.0.0.9", "10.0.0.10", IpVersion::IPv4),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::IcmPv4(IcmPv4 { r#type: 8, code: 0 })),
        }),
        source: endpoint("default", "xwing", 600, &["k8s:org=alliance"]),
        event_type: Some(CiliumEventType {
            r#type: 1,
            sub_type: 133,
        }),
        node_name: "node-2".into(),
        ..Default::default()
    };
    vec![web, dns, http, drop]
}

fn cases() -> Vec<(&'static str, FlowFilter, &'static [&'static str])> {
    let f = FlowFilter::default;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let et = |t: i32| EventTypeFilter {
        r#type: t,
        ..Default::default()
    };
    vec![
        ("empty filter matches all", f(), &["web", "dns", "http", "drop"]),
        (
            "uuid",
            FlowFilter {
                uuid: s(&["dns", "drop"]),
                ..f()
            },
            &["dns", "drop"],
        ),
        (
            "source_ip exact",
            FlowFilter {
                source_ip: s(&["10.0.0.1"]),
                ..f()
            },
            &["web"],
        ),
        (
            "source_ip cidr",
            FlowFilter {
                source_ip: s(&["10.0.0.0/30"]),
                ..f()
            },
            &["web", "dns"],
        ),
        (
            "destination_ip v6 cidr",
            FlowFilter {
                destination_ip: s(&["fd00::/64"]),
                ..f()
            },
            &["http"],
        ),
        (
            "source_ip_xlated",
            FlowFilter {
                source_ip_xlated: s(&["192.168.0.0/16"]),
                ..f()
            },
            &["http"],
        ),
        (
            "source_pod ns/prefix",
            FlowFilter {
                source_pod: s(&["kube-system/core"]),
                ..f()
            },
            &["dns"],
        ),
        (
            "source_pod bare = default ns",
            FlowFilter {
                source_pod: s(&["xwing"]),
                ..f()
            },
            &["drop"],
        ),
        (
            "source_pod any ns",
            FlowFilter {
                source_pod: s(&["/api"]),
                ..f()
            },
            &["http"],
        ),
        (
            "destination_pod ns/",
            FlowFilter {
                destination_pod: s(&["shop/"]),
                ..f()
            },
            &["web", "http"],
        ),
        (
            "source_fqdn wildcard",
            FlowFilter {
                source_fqdn: s(&["*.kube-system.svc.cluster.local"]),
                ..f()
            },
            &["dns"],
        ),
        (
            "destination_fqdn exact",
            FlowFilter {
                destination_fqdn: s(&["API.shop.svc.cluster.local."]),
                ..f()
            },
            &["web"],
        ),
        (
            "source_label any source",
            FlowFilter {
                source_label: s(&["app=web"]),
                ..f()
            },
            &["web", "http"],
        ),
        (
            "source_label k8s source",
            FlowFilter {
                source_label: s(&["k8s:app=web"]),
                ..f()
            },
            &["web"],
        ),
        (
            "source_label set-based",
            FlowFilter {
                source_label: s(&["app in (api, web), tier"]),
                ..f()
            },
            &["web"],
        ),
        (
            "source_label set-based without a space before the parenthesis",
            FlowFilter {
                source_label: s(&["k8s:app in(api)"]),
                ..f()
            },
            &["http"],
        ),
        (
            "destination_label cidr",
            FlowFilter {
                destination_label: s(&["cidr:10.0.0.0/8"]),
                ..f()
            },
            &["http"],
        ),
        (
            "node_labels",
            FlowFilter {
                node_labels: s(&["zone=a"]),
                ..f()
            },
            &["web"],
        ),
        (
            "source_service",
            FlowFilter {
                source_service: s(&["shop/api"]),
                ..f()
            },
            &["http"],
        ),
        (
            "destination_service",
            FlowFilter {
                destination_service: s(&["shop/"]),
                ..f()
            },
            &["web"],
        ),
        (
            "destination_workload",
            FlowFilter {
                destination_workload: vec![Workload {
                    name: String::new(),
                    kind: "Deployment".into(),
                }],
                ..f()
            },
            &["web"],
        ),
        (
            "destination_workload by name",
            FlowFilter {
                destination_workload: vec![Workload {
                    name: "api".into(),
                    kind: String::new(),
                }],
                ..f()
            },
            &["web"],
        ),
        (
            "source_workload by name",
            FlowFilter {
                source_workload: vec![Workload {
                    name: "coredns".into(),
                    kind: String::new(),
                }],
                ..f()
            },
            &["dns"],
        ),
        (
            "source_workload name and kind must both match",
            FlowFilter {
                source_workload: vec![
                    Workload {
                        name: "api".into(),
                        kind: "Deployment".into(),
                    },
                    Workload {
                        name: "coredns".into(),
                        kind: "Deployment".into(),
                    },
                ],
                ..f()
            },
            &["dns"],
        ),
        (
            "source_workload by kind",
            FlowFilter {
                source_workload: vec![Workload {
                    name: String::new(),
                    kind: "StatefulSet".into(),
                }],
                ..f()
            },
            &["http"],
        ),
        (
            "source_cluster_name",
            FlowFilter {
                source_cluster_name: s(&["c1"]),
                ..f()
            },
            &["web", "dns", "http", "drop"],
        ),
        (
            "destination_cluster_name",
            FlowFilter {
                destination_cluster_name: s(&["c2"]),
                ..f()
            },
            &["http"],
        ),
        (
            "traffic_direction",
            FlowFilter {
                traffic_direction: vec![TrafficDirection::Ingress as i32],
                ..f()
            },
            &["dns"],
        ),
        (
            "verdict",
            FlowFilter {
                verdict: vec![Verdict::Dropped as i32],
                ..f()
            },
            &["drop"],
        ),
        (
            "drop_reason_desc",
            FlowFilter {
                drop_reason_desc: vec![DropReason::PolicyDenied as i32],
                ..f()
            },
            &["drop"],
        ),
        (
            "interface by name",
            FlowFilter {
                interface: vec![NetworkInterface {
                    index: 0,
                    name: "eth0".into(),
                }],
                ..f()
            },
            &["web"],
        ),
        (
            "interface wrong index",
            FlowFilter {
                interface: vec![NetworkInterface {
                    index: 6,
                    name: String::new(),
                }],
                ..f()
            },
            &[],
        ),
        (
            "event_type",
            FlowFilter {
                event_type: vec![et(129)],
                ..f()
            },
            &["dns", "http"],
        ),
        (
            "event_type with sub type",
            FlowFilter {
                event_type: vec![EventTypeFilter {
                    r#type: 4,
                    match_sub_type: true,
                    sub_type: 3,
                }],
                ..f()
            },
            &["web"],
        ),
        (
            "http_status_code prefix",
            FlowFilter {
                http_status_code: s(&["5+"]),
                ..f()
            },
            &["http"],
        ),
        (
            "http_status_code exact",
            FlowFilter {
                http_status_code: s(&["503"]),
                ..f()
            },
            &["http"],
        ),
        (
            "http_status_code two-digit prefix",
            FlowFilter {
                http_status_code: s(&["50+"]),
                ..f()
            },
            &["http"],
        ),
        (
            "http_status_code two-digit prefix miss",
            FlowFilter {
                http_status_code: s(&["52+", "40+"]),
                ..f()
            },
            &[],
        ),
        (
            "http_status_code exact miss",
            FlowFilter {
                http_status_code: s(&["200"]),
                ..f()
            },
            &[],
        ),
        (
            "http_method case-insensitive",
            FlowFilter {
                http_method: s(&["GET"]),
                ..f()
            },
            &["http"],
        ),
        (
            "http_path regex",
            FlowFilter {
                http_path: s(&["^/v1/it"]),
                event_type: vec![et(129)],
                ..f()
            },
            &["http"],
        ),
        (
            "http_url regex",
            FlowFilter {
                http_url: s(&["items\\?x="]),
                ..f()
            },
            &["http"],
        ),
        (
            "http_header",
            FlowFilter {
                http_header: vec![HttpHeader {
                    key: "x-env".into(),
                    value: "prod".into(),
                }],
                ..f()
            },
            &["http"],
        ),
        (
            "protocol tcp",
            FlowFilter {
                protocol: s(&["TCP"]),
                ..f()
            },
            &["web", "http"],
        ),
        (
            "protocol icmp",
            FlowFilter {
                protocol: s(&["icmp"]),
                ..f()
            },
            &["drop"],
        ),
        (
            "protocol dns",
            FlowFilter {
                protocol: s(&["dns"]),
                ..f()
            },
            &["dns"],
        ),
        (
            "source_port",
            FlowFilter {
                source_port: s(&["5353"]),
                ..f()
            },
            &["dns"],
        ),
        (
            "destination_port",
            FlowFilter {
                destination_port: s(&["80", "8080"]),
                ..f()
            },
            &["web", "http"],
        ),
        (
            "reply true",
            FlowFilter {
                reply: vec![true],
                ..f()
            },
            &["dns"],
        ),
        (
            "reply false includes unset drops",
            FlowFilter {
                reply: vec![false],
                ..f()
            },
            &["web", "drop"],
        ),
        (
            "dns_query regex",
            FlowFilter {
                dns_query: s(&["cilium\\.io"]),
                ..f()
            },
            &["dns"],
        ),
        (
            "source_identity",
            FlowFilter {
                source_identity: vec![100, 600],
                ..f()
            },
            &["web", "drop"],
        ),
        (
            "destination_identity",
            FlowFilter {
                destination_identity: vec![200],
                ..f()
            },
            &["web"],
        ),
        (
            "tcp_flags subset",
            FlowFilter {
                tcp_flags: vec![TcpFlags {
                    ack: true,
                    ..Default::default()
                }],
                ..f()
            },
            &["http"],
        ),
        (
            "tcp_flags syn",
            FlowFilter {
                tcp_flags: vec![TcpFlags {
                    syn: true,
                    ..Default::default()
                }],
                ..f()
            },
            &["web"],
        ),
        (
            "node_name wildcard, default cluster",
            FlowFilter {
                node_name: s(&["node-*"]),
                ..f()
            },
            &["web", "dns", "http", "drop"],
        ),
        (
            "node_name cluster/",
            FlowFilter {
                node_name: s(&["prod/"]),
                ..f()
            },
            &["http"],
        ),
        (
            "node_name default cluster",
            FlowFilter {
                node_name: s(&["default/node-2"]),
                ..f()
            },
            &["drop"],
        ),
        (
            "ip_version",
            FlowFilter {
                ip_version: vec![IpVersion::IPv6 as i32],
                ..f()
            },
            &["http"],
        ),
        (
            "trace_id",
            FlowFilter {
                trace_id: s(&["abc"]),
                ..f()
            },
            &["web"],
        ),
        (
            "ip_trace_id",
            FlowFilter {
                ip_trace_id: vec![42],
                ..f()
            },
            &["web"],
        ),
        (
            "encrypted",
            FlowFilter {
                encrypted: vec![true],
                ..f()
            },
            &["http"],
        ),
        (
            "encrypted false",
            FlowFilter {
                encrypted: vec![false],
                ..f()
            },
            &["web", "dns", "drop"],
        ),
        (
            "source_ip v6 written differently",
            FlowFilter {
                source_ip: s(&["fd00:0::1"]),
                ..f()
            },
            &["http"],
        ),
        (
            "destination_ip v6 written in full",
            FlowFilter {
                destination_ip: s(&["fd00:0000:0000:0000:0000:0000:0000:0002"]),
                ..f()
            },
            &["http"],
        ),
        (
            "fields are ANDed",
            FlowFilter {
                source_ip: s(&["10.0.0.0/8"]),
                verdict: vec![Verdict::Forwarded as i32],
                ..f()
            },
            &["web", "dns"],
        ),
    ]
}

#[tokio::test]
async fn every_field_filters_with_hubble_semantics() {
    let mut agent = start(&[]).await;
    let all = flows();
    for flow in &all {
        agent.publish_flow(flow.clone());
    }
    let mut client = agent.observer().await;
    for (name, filter, expected) in cases() {
        let allowed = collect(
            &mut client,
            GetFlowsRequest {
                whitelist: vec![filter.clone()],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(uuids(&allowed), expected.to_vec(), "whitelist: {name}");
        let denied = collect(
            &mut client,
            GetFlowsRequest {
                blacklist: vec![filter],
                ..Default::default()
            },
        )
        .await;
        let complement: Vec<String> = all
            .iter()
            .map(|f| f.uuid.clone())
            .filter(|u| !expected.contains(&u.as_str()))
            .collect();
        assert_eq!(uuids(&denied), complement, "blacklist: {name}");
    }
}

#[tokio::test]
async fn whitelist_is_or_and_blacklist_wins() {
    let mut agent = start(&[]).await;
    for flow in flows() {
        agent.publish_flow(flow);
    }
    let mut client = agent.observer().await;
    let request = GetFlowsRequest {
        whitelist: vec![
            FlowFilter {
                verdict: vec![Verdict::Dropped as i32],
                ..Default::default()
            },
            FlowFilter {
                protocol: vec!["udp".into()],
                ..Default::default()
            },
            FlowFilter {
                destination_port: vec!["80".into()],
                ..Default::default()
            },
        ],
        blacklist: vec![FlowFilter {
            source_pod: vec!["web".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    assert_eq!(uuids(&collect(&mut client, request).await), vec!["dns", "drop"]);
}

fn cel(expressions: &[&str]) -> FlowFilter {
    FlowFilter {
        experimental: Some(sightline_proto::flow::flow_filter::Experimental {
            cel_expression: expressions.iter().map(|e| e.to_string()).collect(),
        }),
        ..Default::default()
    }
}

/// CEL over `_flow` with cel-go's types: uint32 fields are `uint`, enums `int`,
/// unset messages read as their defaults, runtime errors do not match.
fn cel_cases() -> Vec<(&'static str, FlowFilter, &'static [&'static str])> {
    vec![
        (
            "namespace and port",
            cel(&[r#"_flow.source.namespace == "kube-system" && _flow.l4.UDP.destination_port == 53u"#]),
            &["dns"],
        ),
        (
            "tcp port; other protocols read 0",
            cel(&["_flow.l4.TCP.destination_port == 80u"]),
            &["web"],
        ),
        (
            "unset l4 member is its default",
            cel(&["_flow.l4.TCP.destination_port == 0u"]),
            &["dns", "drop"],
        ),
        (
            "enum constant in the flow container",
            cel(&["_flow.verdict == Verdict.DROPPED"]),
            &["drop"],
        ),
        (
            "qualified enum constant",
            cel(&["_flow.verdict == flow.Verdict.FORWARDED"]),
            &["web", "dns", "http"],
        ),
        ("enum as number", cel(&["_flow.verdict == 2"]), &["drop"]),
        (
            "source label",
            cel(&[r#""k8s:app=web" in _flow.source.labels"#]),
            &["web"],
        ),
        (
            "destination label macro",
            cel(&[r#"_flow.destination.labels.exists(l, l.startsWith("cidr:"))"#]),
            &["http"],
        ),
        (
            "all() over labels",
            cel(&[r#"_flow.source.labels.all(l, l.startsWith("k8s:"))"#]),
            &["web", "dns", "drop"],
        ),
        (
            "destination pod regex",
            cel(&[r#"_flow.destination.pod_name.matches("^api-")"#]),
            &["web"],
        ),
        ("dns query", cel(&[r#"_flow.l7.dns.query == "cilium.io.""#]), &["dns"]),
        ("http status", cel(&["_flow.l7.http.code >= 500u"]), &["http"]),
        ("presence of a oneof member", cel(&["has(_flow.l7.http)"]), &["http"]),
        (
            "wrapper compared with a bool",
            cel(&["_flow.is_reply == true"]),
            &["dns"],
        ),
        (
            "wrapper compared with null",
            cel(&["_flow.is_reply == null"]),
            &["http", "drop"],
        ),
        (
            "destination service",
            cel(&[r#"_flow.destination_service.name == "api""#]),
            &["web"],
        ),
        ("ip version", cel(&["_flow.IP.ipVersion == IPVersion.IPv6"]), &["http"]),
        ("ip address", cel(&[r#"_flow.IP.source == "10.0.0.3""#]), &["dns"]),
        (
            "tcp flag (read generically)",
            cel(&["_flow.l4.TCP.flags.SYN"]),
            &["web"],
        ),
        (
            "ip trace id (read generically)",
            cel(&["_flow.ip_trace_id.trace_id == 42u"]),
            &["web"],
        ),
        (
            "workload count (read generically)",
            cel(&["size(_flow.source.workloads) == 1"]),
            &["dns", "http"],
        ),
        ("event type", cel(&["_flow.event_type.type == 129"]), &["dns", "http"]),
        ("node name", cel(&[r#"_flow.node_name.startsWith("prod/")"#]), &["http"]),
        (
            "identity list",
            cel(&["_flow.source.identity in [100u, 600u]"]),
            &["web", "drop"],
        ),
        (
            "index out of range is no match",
            cel(&[r#"_flow.source.labels[1] == "k8s:tier=front""#]),
            &["web"],
        ),
        (
            "null wrapper as a bool is an error",
            cel(&["!_flow.is_reply"]),
            &["web"],
        ),
        (
            "error absorbed by ||",
            cel(&["_flow.is_reply || _flow.verdict == Verdict.DROPPED"]),
            &["dns", "drop"],
        ),
        (
            "expressions are ORed",
            cel(&["_flow.verdict == Verdict.DROPPED", r#"_flow.l7.dns.query != """#]),
            &["dns", "drop"],
        ),
        (
            "ANDed with the filter's other fields",
            FlowFilter {
                source_pod: vec!["shop/".into()],
                ..cel(&[r#"_flow.l7.http.method == "get""#])
            },
            &["http"],
        ),
        (
            "ANDed: other field excludes the CEL match",
            FlowFilter {
                verdict: vec![Verdict::Dropped as i32],
                ..cel(&["_flow.l4.TCP.destination_port == 80u"])
            },
            &[],
        ),
    ]
}

#[tokio::test]
async fn cel_expressions_filter_as_in_hubble() {
    let mut agent = start(&[]).await;
    let all = flows();
    for flow in &all {
        agent.publish_flow(flow.clone());
    }
    let mut client = agent.observer().await;
    for (name, filter, expected) in cel_cases() {
        let allowed = collect(
            &mut client,
            GetFlowsRequest {
                whitelist: vec![filter.clone()],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(uuids(&allowed), expected.to_vec(), "whitelist: {name}");
        let denied = collect(
            &mut client,
            GetFlowsRequest {
                blacklist: vec![filter],
                ..Default::default()
            },
        )
        .await;
        let complement: Vec<String> = all
            .iter()
            .map(|f| f.uuid.clone())
            .filter(|u| !expected.contains(&u.as_str()))
            .collect();
        assert_eq!(uuids(&denied), complement, "blacklist: {name}");
    }
}

/// Enrichment attached by reference and fields the datapath defers are what
/// CEL sees, on the direct paths and on those read from the complete flow.
#[tokio::test]
async fn cel_sees_enrichment_and_deferred_fields() {
    use std::sync::Arc;

    use sightline_agent::event::Event;
    use sightline_agent::flow_record::{FlowRecord, Metadata, Shared};

    let mut agent = start(&[]).await;
    let mut record = FlowRecord::new(Flow {
        uuid: "enriched".into(),
        time: Some(at(1)),
        ..Default::default()
    });
    record.addresses = Some(("10.0.0.1".parse().unwrap(), "10.96.0.10".parse().unwrap()));
    record.set_node_name(&Arc::from("node-a"));
    record.deferred.interface = Some((7, Arc::from("lxc1")));
    record.metadata = Metadata {
        source: Some(Arc::new(Shared::new(Endpoint {
            workloads: vec![Workload {
                name: "web".into(),
                kind: "Deployment".into(),
            }],
            ..*endpoint("shop", "web-1", 4242, &["k8s:app=web"]).unwrap()
        }))),
        destination_service: Some(Arc::new(Shared::new(Service {
            name: "kube-dns".into(),
            namespace: "kube-system".into(),
        }))),
        destination_names: Some(vec!["kube-dns.kube-system.svc.cluster.local".to_owned()].into()),
        ..Metadata::default()
    };
    agent.publish(Event::Flow(Box::new(record)));
    agent.publish_flow(Flow {
        uuid: "plain".into(),
        time: Some(at(2)),
        ..Default::default()
    });
    let mut client = agent.observer().await;
    for expression in [
        r#"_flow.source.pod_name == "web-1" && "k8s:app=web" in _flow.source.labels"#,
        r#"_flow.destination_service.namespace == "kube-system""#,
        r#"_flow.destination_names.exists(n, n.endsWith(".svc.cluster.local"))"#,
        r#"_flow.node_name == "node-a" && _flow.interface.name == "lxc1""#,
        r#"_flow.IP.source == "10.0.0.1" && _flow.IP.ipVersion == IPVersion.IPv4"#,
        "size(_flow.source.workloads) == 1",
        "has(_flow.source) && has(_flow.destination_service)",
    ] {
        let request = GetFlowsRequest {
            whitelist: vec![cel(&[expression])],
            ..Default::default()
        };
        assert_eq!(
            uuids(&collect(&mut client, request).await),
            vec!["enriched"],
            "{expression}"
        );
    }
}

#[tokio::test]
async fn invalid_cel_is_invalid_argument_naming_expression_and_position() {
    use tonic::Code;

    let agent = start(&[]).await;
    let mut client = agent.observer().await;
    for (expression, expected) in [
        (
            r#"_flow.source.namspace == "x""#,
            "ERROR: <input>:1:13: undefined field 'namspace'",
        ),
        (
            "_flow.l4.TCP.destination_port == 53",
            "ERROR: <input>:1:31: found no matching overload for '_==_' applied to '(uint, int)'",
        ),
        ("_flow.verdict ==", "ERROR: <input>:1:17: Syntax error"),
        ("_flow.source.pod_name", r#"got "string", wanted "bool" result type"#),
        ("_flow.is_reply", r#"got "wrapper(bool)", wanted "bool" result type"#),
    ] {
        let err = client
            .get_flows(GetFlowsRequest {
                blacklist: vec![cel(&["true", expression])],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{expression}");
        assert!(
            err.message().contains("experimental.cel_expression")
                && err.message().contains(&format!("{expression:?}"))
                && err.message().contains(expected),
            "{expression}: {}",
            err.message()
        );
    }
}
