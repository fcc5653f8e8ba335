//! Series reached through shortcuts (flows whose endpoints enrichment attached by
//! reference) are the series the label strings name.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use sightline_proto::flow::{DropReason, Flow, TcpFlags, TrafficDirection};

use super::testing::*;
use crate::flow_record::{FlowRecord, Shared, SharedEndpoint};
use crate::metrics::FlowMetrics;
use crate::metrics::options::parse_list;
use crate::metrics::sink::GonePod;

fn metrics(list: &str) -> FlowMetrics {
    FlowMetrics::new(&parse_list(&[list]).unwrap(), 1_000).unwrap()
}

/// `flow` with both endpoints moved into shared references.
fn shared(flow: &Flow, source: &SharedEndpoint, destination: &SharedEndpoint) -> FlowRecord {
    let mut record = FlowRecord::new(Flow {
        source: None,
        destination: None,
        ..flow.clone()
    });
    record.metadata.source = Some(Arc::clone(source));
    record.metadata.destination = Some(Arc::clone(destination));
    record
}

fn flows() -> Vec<Flow> {
    let flags = |fin, syn, ack, rst| TcpFlags {
        fin,
        syn,
        ack,
        rst,
        ..TcpFlags::default()
    };
    let mut ingress = tcp_flow(flags(false, true, true, false), 443);
    ingress.traffic_direction = TrafficDirection::Ingress as i32;
    vec![
        tcp_flow(syn(), 5432),
        tcp_flow(flags(true, false, true, true), 5432),
        ingress,
        dropped(tcp_flow(syn(), 80), DropReason::PolicyDenied as i32),
        dropped(udp_flow(53), DropReason::StaleOrUnroutableIp as i32),
        udp_flow(53),
        icmp_flow(false, 8, 0),
        icmp_flow(true, 128, 0),
        icmp_flow(false, 3, 3),
        dns_flow(true, "db.example.", "A", 0, &["10.0.0.9"], &["A"]),
        dns_flow(false, "db.example.", "AAAA", 0, &[], &[]),
        dns_flow(true, "cdn.example.", "A", 3, &[], &[]),
        dns_flow(
            true,
            "www.example.",
            "A",
            0,
            &["10.0.0.7", "10.0.0.8"],
            &["CNAME", "A", "NAPTR"],
        ),
        dns_flow(true, "odd.example.", "NAPTR", 0, &["10.0.0.6"], &["NAPTR"]),
        dropped(
            dns_flow(false, "blocked.example.", "TXT", 0, &[], &[]),
            DropReason::PolicyDenied as i32,
        ),
    ]
}

#[test]
fn shortcuts_count_into_the_series_the_labels_name() {
    // With whether the context reads the endpoints.
    let lists = [
        (
            "flow:sourceContext=pod;destinationContext=pod drop:sourceContext=pod;destinationContext=pod \
             tcp:sourceContext=pod;destinationContext=pod port-distribution:sourceContext=pod;destinationContext=pod",
            true,
        ),
        (
            "flow:sourceContext=namespace;destinationContext=workload drop:sourceContext=app|pod \
             tcp:sourceContext=identity;destinationEgressContext=pod-name;destinationIngressContext=namespace;destinationContext=pod \
             port-distribution:labelsContext=source_pod,destination_workload_kind,traffic_direction",
            true,
        ),
        ("flow drop tcp port-distribution", false),
        ("icmp:sourceContext=pod;destinationContext=pod", true),
        ("dns:sourceContext=pod;destinationContext=pod", true),
        (
            "dns:ignoreAAAA;labelsContext=source_namespace,destination_workload",
            true,
        ),
        (
            "icmp:labelsContext=source_namespace,destination_pod,traffic_direction",
            true,
        ),
    ];
    let source: SharedEndpoint = Arc::new(Shared::new(pod("shop", "web-7d4f9-xk2p9", "web", "web")));
    let destination: SharedEndpoint = Arc::new(Shared::new(pod("db", "pg-0", "pg", "postgres")));
    for (list, reads_endpoints) in lists {
        let mut by_labels = metrics(list);
        let mut by_shortcut = metrics(list);
        for _ in 0..3 {
            for flow in flows() {
                by_labels.process(&FlowRecord::new(flow.clone()));
                by_shortcut.process(&shared(&flow, &source, &destination));
            }
        }
        if reads_endpoints {
            assert_eq!(
                by_labels.shortcut_count(),
                0,
                "{list}: endpoints carried in the flow take no shortcut"
            );
        }
        assert!(
            by_shortcut.shortcut_count() > 0,
            "{list}: shared endpoints take shortcuts"
        );
        assert_eq!(scrape_metrics(&by_shortcut), scrape_metrics(&by_labels), "{list}");
    }
}

#[test]
fn contexts_that_read_addresses_or_names_take_no_shortcut() {
    let source: SharedEndpoint = Arc::new(Shared::new(pod("shop", "web-1", "web", "web")));
    let destination: SharedEndpoint = Arc::new(Shared::new(pod("db", "pg-0", "pg", "postgres")));
    let mut by_ip = metrics("flow:sourceContext=pod|ip drop:labelsContext=destination_ip tcp:destinationContext=dns");
    let mut other_address = tcp_flow(syn(), 80);
    other_address.ip.as_mut().unwrap().source = "10.0.0.77".into();
    for flow in [tcp_flow(syn(), 80), other_address] {
        by_ip.process(&shared(&flow, &source, &destination));
    }
    assert_eq!(by_ip.shortcut_count(), 0);
}

#[test]
fn an_endpoint_allocated_where_a_departed_one_was_gets_its_own_series() {
    let mut metrics = metrics("flow:sourceContext=pod");
    let destination: SharedEndpoint = Arc::new(Shared::new(pod("db", "pg-0", "pg", "postgres")));
    let first: SharedEndpoint = Arc::new(Shared::new(pod("shop", "web-1", "web", "web")));
    metrics.process(&shared(&tcp_flow(syn(), 80), &first, &destination));
    drop(first);
    // Same size as the departed endpoint: the allocator would hand out its
    // memory again if the shortcut did not keep it.
    let second: SharedEndpoint = Arc::new(Shared::new(pod("shop", "web-2", "web", "web")));
    metrics.process(&shared(&tcp_flow(syn(), 80), &second, &destination));
    let text = scrape_metrics(&metrics);
    assert_eq!(
        samples(&text, "hubble_flows_processed_total"),
        [
            r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED",source="shop/web-1"} 1"#,
            r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED",source="shop/web-2"} 1"#,
        ]
    );
}

#[test]
fn a_removed_series_starts_again_from_zero_when_its_pod_sends_again() {
    let mut metrics = metrics("flow:sourceContext=pod");
    let source: SharedEndpoint = Arc::new(Shared::new(pod("shop", "web-1", "web", "web")));
    let destination: SharedEndpoint = Arc::new(Shared::new(pod("db", "pg-0", "pg", "postgres")));
    let flow = tcp_flow(syn(), 80);
    metrics.process(&shared(&flow, &source, &destination));
    metrics.process(&shared(&flow, &source, &destination));
    let gone = GonePod {
        namespace: "shop".into(),
        name: "web-1".into(),
        ips: vec![],
    };
    assert_eq!(metrics.forget(&|label, value| gone.is_named_by(label, value)), 1);
    assert_eq!(
        metrics.shortcut_count(),
        0,
        "the shortcut to the removed series went with it"
    );
    metrics.process(&shared(&flow, &source, &destination));
    assert_eq!(
        samples(&scrape_metrics(&metrics), "hubble_flows_processed_total"),
        [
            r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED",source="shop/web-1"} 1"#
        ]
    );
}
