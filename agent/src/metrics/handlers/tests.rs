//! One table per handler: the label names, their order and values Hubble
//! produces for one flow of each kind (written from `pkg/hubble/metrics/**` at
//! v1.19), read back from a scrape.

#![allow(clippy::unwrap_used)]

use sightline_proto::flow::{DropReason, L7FlowType, TcpFlags, TrafficDirection};

use super::testing::*;
use crate::metrics::options::parse_list;
use crate::metrics::{FlowMetrics, MetricsError};

fn check(list: &str, flows: &[sightline_proto::flow::Flow], metric: &str, expected: &[&str]) {
    let text = scrape(list, flows);
    assert_eq!(samples(&text, metric), expected, "{list}: {metric} in\n{text}");
}

#[test]
fn flow_counts_every_flow_by_protocol_type_subtype_and_verdict() {
    let drop = dropped(tcp_flow(syn(), 5432), DropReason::PolicyDenied as i32);
    let dns = dns_flow(false, "db.example.", "A", 0, &[], &[]);
    let mut unknown = tcp_flow(syn(), 80);
    unknown.event_type = Some(sightline_proto::flow::CiliumEventType { r#type: 9, sub_type: 0 });
    check(
        "flow",
        &[tcp_flow(syn(), 5432), tcp_flow(syn(), 5432), drop, dns, unknown],
        "hubble_flows_processed_total",
        &[
            r#"hubble_flows_processed_total{protocol="DNS",type="L7",subtype="DNS",verdict="FORWARDED"} 1"#,
            r#"hubble_flows_processed_total{protocol="TCP",type="Drop",subtype="",verdict="DROPPED"} 1"#,
            r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED"} 2"#,
            r#"hubble_flows_processed_total{protocol="Unknown flow",type="Unknown",subtype="9",verdict="FORWARDED"} 1"#,
        ],
    );
}

#[test]
fn context_labels_follow_the_handler_labels_in_hubbles_order() {
    check(
        "flow:destinationContext=pod-name;sourceContext=pod;labelsContext=traffic_direction,source_namespace,destination_workload_kind",
        &[tcp_flow(syn(), 5432)],
        "hubble_flows_processed_total",
        &[concat!(
            r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED","#,
            r#"source_namespace="shop",destination_workload_kind="Deployment",traffic_direction="egress","#,
            r#"source="shop/web-7d4f9-xk2p9",destination="pg-0"} 1"#
        )],
    );
}

#[test]
fn every_context_identifier_names_the_endpoint_as_hubble_does() {
    let mut flow = tcp_flow(syn(), 5432);
    flow.source_names = vec!["web.shop.svc".into(), "www.example".into()];
    if let Some(source) = flow.source.as_mut() {
        source.labels.push("reserved:host".into());
        source.labels.push("reserved:kube-apiserver".into());
    }
    let cases = [
        (
            "identity",
            "k8s:app=web,k8s:io.kubernetes.pod.namespace=shop,reserved:host,reserved:kube-apiserver",
        ),
        ("namespace", "shop"),
        ("pod", "shop/web-7d4f9-xk2p9"),
        ("pod-short", "shop/web"),
        ("pod-name", "web-7d4f9-xk2p9"),
        ("dns", "web.shop.svc,www.example"),
        ("ip", "10.0.0.1"),
        ("reserved-identity", "reserved:kube-apiserver"),
        ("workload", "shop/web"),
        ("workload-name", "web"),
        ("app", "web"),
    ];
    for (identifier, value) in cases {
        check(
            &format!("drop:sourceContext={identifier}"),
            &[dropped(flow.clone(), DropReason::PolicyDenied as i32)],
            "hubble_drop_total",
            &[&format!(
                r#"hubble_drop_total{{source="{value}",reason="POLICY_DENIED",protocol="TCP"}} 1"#
            )],
        );
    }
}

#[test]
fn identifiers_fall_back_left_to_right_and_direction_variants_override() {
    let mut to_world = tcp_flow(syn(), 443);
    to_world.destination = Some(Box::new(world()));
    to_world.ip.as_mut().unwrap().destination = "1.1.1.1".into();
    check(
        "drop:destinationContext=pod|reserved-identity|ip",
        &[dropped(to_world.clone(), DropReason::PolicyDenied as i32)],
        "hubble_drop_total",
        &[r#"hubble_drop_total{destination="reserved:world",reason="POLICY_DENIED",protocol="TCP"} 1"#],
    );
    // Egress flow: the egress variant wins; an ingress flow keeps the generic one.
    let mut ingress = tcp_flow(syn(), 5432);
    ingress.traffic_direction = TrafficDirection::Ingress as i32;
    check(
        "flow:sourceContext=namespace;sourceEgressContext=pod-name",
        &[tcp_flow(syn(), 5432), ingress],
        "hubble_flows_processed_total",
        &[
            r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED",source="shop"} 1"#,
            r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED",source="web-7d4f9-xk2p9"} 1"#,
        ],
    );
    // Hubble adds the label only for the generic option.
    check(
        "flow:sourceEgressContext=pod",
        &[tcp_flow(syn(), 5432)],
        "hubble_flows_processed_total",
        &[r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED"} 1"#],
    );
}

#[test]
fn drop_counts_only_drops_with_context_first() {
    check(
        "drop:sourceContext=namespace;destinationContext=namespace",
        &[
            tcp_flow(syn(), 5432),
            dropped(tcp_flow(syn(), 5432), DropReason::PolicyDenied as i32),
            dropped(udp_flow(53), DropReason::CtMapInsertionFailed as i32),
        ],
        "hubble_drop_total",
        &[
            r#"hubble_drop_total{source="shop",destination="db",reason="CT_MAP_INSERTION_FAILED",protocol="UDP"} 1"#,
            r#"hubble_drop_total{source="shop",destination="db",reason="POLICY_DENIED",protocol="TCP"} 1"#,
        ],
    );
}

#[test]
fn tcp_counts_fin_syn_synack_and_rst_of_forwarded_packets() {
    let flags = |syn, ack, fin, rst| TcpFlags {
        syn,
        ack,
        fin,
        rst,
        ..TcpFlags::default()
    };
    check(
        "tcp:sourceContext=pod",
        &[
            tcp_flow(flags(true, false, false, false), 80),
            tcp_flow(flags(true, true, false, false), 80),
            tcp_flow(flags(false, true, true, true), 80),
            tcp_flow(flags(false, true, false, false), 80),
            dropped(
                tcp_flow(flags(true, false, false, false), 80),
                DropReason::PolicyDenied as i32,
            ),
        ],
        "hubble_tcp_flags_total",
        &[
            r#"hubble_tcp_flags_total{flag="FIN",family="IPv4",source="shop/web-7d4f9-xk2p9"} 1"#,
            r#"hubble_tcp_flags_total{flag="RST",family="IPv4",source="shop/web-7d4f9-xk2p9"} 1"#,
            r#"hubble_tcp_flags_total{flag="SYN",family="IPv4",source="shop/web-7d4f9-xk2p9"} 1"#,
            r#"hubble_tcp_flags_total{flag="SYN-ACK",family="IPv4",source="shop/web-7d4f9-xk2p9"} 1"#,
        ],
    );
}

#[test]
fn port_distribution_counts_requests_known_not_to_be_replies() {
    let mut unknown_direction = tcp_flow(syn(), 8443);
    unknown_direction.is_reply = None;
    let mut reply = tcp_flow(syn(), 40000);
    reply.is_reply = Some(pbjson_types::BoolValue { value: true });
    check(
        "port-distribution:destinationContext=app",
        &[
            tcp_flow(syn(), 5432),
            udp_flow(53),
            icmp_flow(false, 8, 0),
            unknown_direction,
            reply,
        ],
        "hubble_port_distribution_total",
        &[
            r#"hubble_port_distribution_total{protocol="ICMPv4",port="0",destination="postgres"} 1"#,
            r#"hubble_port_distribution_total{protocol="TCP",port="5432",destination="postgres"} 1"#,
            r#"hubble_port_distribution_total{protocol="UDP",port="53",destination="postgres"} 1"#,
        ],
    );
}

#[test]
fn icmp_names_type_and_code_like_gopacket() {
    check(
        "icmp",
        &[icmp_flow(false, 8, 0), icmp_flow(false, 3, 3), icmp_flow(true, 128, 0)],
        "hubble_icmp_total",
        &[
            r#"hubble_icmp_total{family="IPv4",type="DestinationUnreachable(Port)"} 1"#,
            // Hubble writes "IPv4" for ICMPv6 as well; only the type tells them apart.
            r#"hubble_icmp_total{family="IPv4",type="EchoRequest"} 2"#,
        ],
    );
}

#[test]
fn dns_counts_queries_responses_and_record_types() {
    let query = dns_flow(false, "db.example.", "A", 0, &[], &[]);
    let answer = dns_flow(true, "db.example.", "A", 0, &["10.0.1.2", "10.0.1.3"], &["A", "A"]);
    let nxdomain = dns_flow(true, "nope.example.", "A", 3, &[], &[]);
    let mut denied = dns_flow(false, "evil.example.", "A", 0, &[], &[]);
    denied.verdict = sightline_proto::flow::Verdict::Dropped as i32;
    let aaaa = dns_flow(false, "db.example.", "AAAA", 0, &[], &[]);
    let flows = [query, answer, nxdomain, denied, aaaa];
    let list = "dns:query;ignoreAAAA;sourceContext=namespace";
    check(
        list,
        &flows,
        "hubble_dns_queries_total",
        &[
            r#"hubble_dns_queries_total{source="shop",rcode="",qtypes="A",ips_returned="0",query="db.example."} 1"#,
            r#"hubble_dns_queries_total{source="shop",rcode="Policy denied",qtypes="A",ips_returned="0",query="evil.example."} 1"#,
        ],
    );
    check(
        list,
        &flows,
        "hubble_dns_responses_total",
        &[
            r#"hubble_dns_responses_total{source="shop",rcode="No Error",qtypes="A",ips_returned="2",query="db.example."} 1"#,
            r#"hubble_dns_responses_total{source="shop",rcode="Non-Existent Domain",qtypes="A",ips_returned="0",query="nope.example."} 1"#,
        ],
    );
    check(
        list,
        &flows,
        "hubble_dns_response_types_total",
        &[r#"hubble_dns_response_types_total{source="shop",type="A",qtypes="A",query="db.example."} 2"#],
    );
    check(
        "dns",
        &flows,
        "hubble_dns_queries_total",
        &[
            r#"hubble_dns_queries_total{rcode="",qtypes="A",ips_returned="0"} 1"#,
            r#"hubble_dns_queries_total{rcode="",qtypes="AAAA",ips_returned="0"} 1"#,
            r#"hubble_dns_queries_total{rcode="Policy denied",qtypes="A",ips_returned="0"} 1"#,
        ],
    );
}

#[test]
fn flows_to_world_counts_outbound_flows_with_its_options() {
    let out = |port| {
        let mut flow = tcp_flow(syn(), port);
        flow.destination = Some(Box::new(world()));
        flow
    };
    let mut reply = out(443);
    reply.is_reply = Some(pbjson_types::BoolValue { value: true });
    let mut ack = out(443);
    ack.l4 = tcp_flow(
        TcpFlags {
            ack: true,
            ..TcpFlags::default()
        },
        443,
    )
    .l4;
    let flows = [
        out(443),
        tcp_flow(syn(), 5432),
        reply,
        ack,
        dropped(out(25), DropReason::PolicyDenied as i32),
        dropped(out(80), DropReason::CtMapInsertionFailed as i32),
    ];
    check(
        "flows-to-world:sourceContext=namespace",
        &flows,
        "hubble_flows_to_world_total",
        &[
            r#"hubble_flows_to_world_total{protocol="TCP",verdict="DROPPED",source="shop"} 1"#,
            r#"hubble_flows_to_world_total{protocol="TCP",verdict="FORWARDED",source="shop"} 2"#,
        ],
    );
    check(
        "flows-to-world:any-drop;port;syn-only",
        &flows,
        "hubble_flows_to_world_total",
        &[
            r#"hubble_flows_to_world_total{protocol="TCP",verdict="DROPPED",port="25"} 1"#,
            r#"hubble_flows_to_world_total{protocol="TCP",verdict="DROPPED",port="80"} 1"#,
            r#"hubble_flows_to_world_total{protocol="TCP",verdict="FORWARDED",port="443"} 1"#,
        ],
    );
}

#[test]
fn http_counts_requests_and_responses_with_the_reporter() {
    let flows = [
        http_flow(L7FlowType::Request, "GET", 0, 0),
        http_flow(L7FlowType::Response, "GET", 200, 30_000_000),
    ];
    let list = "http:sourceContext=namespace;destinationContext=namespace";
    check(
        list,
        &flows,
        "hubble_http_requests_total",
        &[
            r#"hubble_http_requests_total{source="shop",destination="db",method="GET",protocol="HTTP/1.1",reporter="client"} 1"#,
        ],
    );
    check(
        list,
        &flows,
        "hubble_http_responses_total",
        &[
            r#"hubble_http_responses_total{source="shop",destination="db",method="GET",protocol="HTTP/1.1",status="200",reporter="client"} 1"#,
        ],
    );
    let text = scrape(list, &flows);
    for line in [
        r#"hubble_http_request_duration_seconds_bucket{le="0.025",source="shop",destination="db",method="GET",reporter="client"} 0"#,
        r#"hubble_http_request_duration_seconds_bucket{le="0.05",source="shop",destination="db",method="GET",reporter="client"} 1"#,
        r#"hubble_http_request_duration_seconds_bucket{le="+Inf",source="shop",destination="db",method="GET",reporter="client"} 1"#,
        r#"hubble_http_request_duration_seconds_count{source="shop",destination="db",method="GET",reporter="client"} 1"#,
        r#"hubble_http_request_duration_seconds_sum{source="shop",destination="db",method="GET",reporter="client"} 0.03"#,
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
}

#[test]
fn http_v2_counts_responses_with_source_and_destination_swapped() {
    let flows = [
        http_flow(L7FlowType::Request, "GET", 0, 0),
        http_flow(L7FlowType::Response, "POST", 503, 1_000_000),
    ];
    let list = "httpV2:exemplars=true;sourceContext=namespace;destinationContext=pod;labelsContext=source_namespace,destination_namespace";
    check(
        list,
        &flows,
        "hubble_http_requests_total",
        &[concat!(
            r#"hubble_http_requests_total{source_namespace="db",destination_namespace="shop","#,
            r#"source="db/pg-0",destination="shop",method="POST",protocol="HTTP/1.1",status="503",reporter="client"} 1"#
        )],
    );
    assert!(samples(&scrape(list, &flows), "hubble_http_responses_total").is_empty());
}

#[test]
fn kafka_counts_request_records() {
    check(
        "kafka:destinationContext=workload-name",
        &[
            kafka_flow(L7FlowType::Request, "orders", 0),
            kafka_flow(L7FlowType::Response, "orders", 0),
        ],
        "hubble_kafka_requests_total",
        &[
            r#"hubble_kafka_requests_total{destination="pg",topic="orders",api_key="produce",error_code="0",reporter="client"} 1"#,
        ],
    );
}

#[test]
fn enrichment_attached_by_reference_is_read_like_the_flows_own() {
    let mut metrics = FlowMetrics::new(&parse_list(&["drop:sourceContext=pod"]).unwrap(), 100).unwrap();
    let flow = dropped(tcp_flow(syn(), 80), DropReason::PolicyDenied as i32);
    metrics.process(&attached(flow));
    assert_eq!(
        samples(&scrape_metrics(&metrics), "hubble_drop_total"),
        [r#"hubble_drop_total{source="shop/web-7d4f9-xk2p9",reason="POLICY_DENIED",protocol="TCP"} 1"#]
    );
}

#[test]
fn bad_configurations_name_what_is_wrong() {
    let error = |list: &str| {
        FlowMetrics::new(&parse_list(&[list]).unwrap(), 100)
            .unwrap_err()
            .to_string()
    };
    assert!(error("policy").contains("unknown metric \"policy\""));
    assert!(error("flows").contains("unknown metric \"flows\""));
    assert!(error("dns:qeury").contains("unknown option \"qeury\""));
    assert!(error("flow:sourceContext=pod|podname").contains("unknown context identifier \"podname\""));
    assert!(error("flow:labelsContext=source_pod,source_cluster").contains("unknown label \"source_cluster\""));
    assert!(matches!(
        FlowMetrics::new(&parse_list(&["http httpV2"]).unwrap(), 100),
        Err(MetricsError::Conflict { .. })
    ));
}

#[test]
fn pod_short_drops_the_replicaset_and_pod_suffixes() {
    use crate::metrics::context::short_pod_name;
    assert_eq!(short_pod_name("web-7d4f9-xk2p9"), "web");
    assert_eq!(short_pod_name("pg-0"), "pg");
    assert_eq!(short_pod_name("a-b-c-d"), "a-b");
    assert_eq!(short_pod_name("coredns"), "coredns");
    assert_eq!(short_pod_name("api-Server-x1"), "api-Server");
}

#[test]
fn beyond_the_series_limit_new_label_sets_are_refused_and_counted() {
    let mut metrics = FlowMetrics::new(&parse_list(&["port-distribution"]).unwrap(), 2).unwrap();
    for port in [80, 443, 8080, 80, 9090] {
        metrics.process(&crate::flow_record::FlowRecord::new(tcp_flow(syn(), port)));
    }
    let text = scrape_metrics(&metrics);
    assert_eq!(
        samples(&text, "hubble_port_distribution_total"),
        [
            r#"hubble_port_distribution_total{protocol="TCP",port="443"} 1"#,
            r#"hubble_port_distribution_total{protocol="TCP",port="80"} 2"#,
        ],
        "existing series keep counting"
    );
    assert_eq!(
        samples(&text, "sightline_metrics_series_limited_total"),
        [r#"sightline_metrics_series_limited_total{metric="hubble_port_distribution_total"} 2"#]
    );
}

#[test]
fn the_series_of_a_deleted_pod_are_removed_and_the_others_kept() {
    use crate::metrics::sink::GonePod;
    let list = "flow:sourceContext=pod;destinationContext=ip drop:labelsContext=source_namespace,source_pod";
    let mut metrics = FlowMetrics::new(&parse_list(&[list]).unwrap(), 100).unwrap();
    let mut other = tcp_flow(syn(), 80);
    other.source.as_mut().unwrap().pod_name = "web-2".into();
    other.ip.as_mut().unwrap().destination = "10.0.9.9".into();
    for flow in [
        tcp_flow(syn(), 80),
        other.clone(),
        dropped(tcp_flow(syn(), 80), DropReason::PolicyDenied as i32),
        dropped(other, DropReason::PolicyDenied as i32),
    ] {
        metrics.process(&crate::flow_record::FlowRecord::new(flow));
    }
    let gone = GonePod {
        namespace: "shop".into(),
        name: "web-7d4f9-xk2p9".into(),
        ips: vec!["10.0.0.1".into()],
    };
    let removed = metrics.forget(&|label, value| gone.is_named_by(label, value));
    assert_eq!(removed, 3, "two flow series (trace and drop) and one drop series");
    let text = scrape_metrics(&metrics);
    assert_eq!(
        samples(&text, "hubble_flows_processed_total"),
        [
            concat!(
                r#"hubble_flows_processed_total{protocol="TCP",type="Drop",subtype="",verdict="DROPPED","#,
                r#"source="shop/web-2",destination="10.0.9.9"} 1"#
            ),
            concat!(
                r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED","#,
                r#"source="shop/web-2",destination="10.0.9.9"} 1"#
            ),
        ]
    );
    assert_eq!(
        samples(&text, "hubble_drop_total"),
        // Hubble's fixed order puts source_pod before source_namespace.
        [r#"hubble_drop_total{source_pod="web-2",source_namespace="shop",reason="POLICY_DENIED",protocol="TCP"} 1"#]
    );
}
