//! Flows counted through the flow cache (one lookup for every replayable handler)
//! land in the series, and as often, as flows counted from their labels.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use sightline_proto::flow::{DropReason, Flow, TcpFlags, TrafficDirection};

use super::testing::*;
use crate::flow_record::{FlowRecord, Shared, SharedEndpoint};
use crate::metrics::FlowMetrics;
use crate::metrics::options::parse_list;

fn metrics(list: &str, max_series: usize) -> FlowMetrics {
    FlowMetrics::new(&parse_list(&[list]).unwrap(), max_series).unwrap()
}

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

fn owned(flow: &Flow, source: &SharedEndpoint, destination: &SharedEndpoint) -> FlowRecord {
    FlowRecord::new(Flow {
        source: Some(Box::new(source.message().clone())),
        destination: Some(Box::new(destination.message().clone())),
        ..flow.clone()
    })
}

/// Flows that differ in every input a replayable handler reads.
fn shapes() -> Vec<Flow> {
    let flags = |fin, syn, ack, rst| TcpFlags {
        fin,
        syn,
        ack,
        rst,
        ..TcpFlags::default()
    };
    let mut ingress = tcp_flow(flags(false, true, true, false), 443);
    ingress.traffic_direction = TrafficDirection::Ingress as i32;
    let mut reply = tcp_flow(flags(false, false, true, false), 443);
    reply.is_reply = Some(true.into());
    let mut unknown_reply = udp_flow(53);
    unknown_reply.is_reply = None;
    let mut no_event = tcp_flow(syn(), 80);
    no_event.event_type = None;
    let mut v6 = tcp_flow(syn(), 80);
    v6.ip.as_mut().unwrap().ip_version = sightline_proto::flow::IpVersion::IPv6 as i32;
    vec![
        tcp_flow(syn(), 5432),
        tcp_flow(syn(), 80),
        tcp_flow(flags(true, false, true, true), 5432),
        ingress,
        reply,
        unknown_reply,
        no_event,
        v6,
        dropped(tcp_flow(syn(), 80), DropReason::PolicyDenied as i32),
        dropped(tcp_flow(syn(), 80), DropReason::StaleOrUnroutableIp as i32),
        dropped(udp_flow(53), DropReason::StaleOrUnroutableIp as i32),
        udp_flow(53),
        udp_flow(123),
        icmp_flow(false, 8, 0),
        icmp_flow(false, 3, 3),
        icmp_flow(true, 128, 0),
        dns_flow(true, "db.example.", "A", 0, &["10.0.0.9"], &["A"]),
    ]
}

const HANDLERS: &str = "flow:sourceContext=pod;destinationContext=pod drop:sourceContext=namespace \
    tcp:sourceContext=identity;destinationEgressContext=pod-name;destinationIngressContext=namespace;destinationContext=pod \
    port-distribution:labelsContext=source_pod,destination_workload_kind,traffic_direction \
    icmp:sourceContext=app|pod flows-to-world:any-drop;port;sourceContext=pod \
    dns:sourceContext=pod";

#[test]
fn replayed_flows_count_what_their_labels_name() {
    let pods: [SharedEndpoint; 3] = [
        Arc::new(Shared::new(pod("shop", "web-7d4f9-xk2p9", "web", "web"))),
        Arc::new(Shared::new(pod("db", "pg-0", "pg", "postgres"))),
        Arc::new(Shared::new(world())),
    ];
    let mut by_labels = metrics(HANDLERS, 1_000);
    let mut by_cache = metrics(HANDLERS, 1_000);
    for _ in 0..3 {
        for flow in shapes() {
            for (source, destination) in [(0, 1), (1, 0), (0, 2), (2, 0)] {
                by_labels.process(&owned(&flow, &pods[source], &pods[destination]));
                by_cache.process(&shared(&flow, &pods[source], &pods[destination]));
            }
        }
    }
    assert_eq!(by_labels.cached_flow_count(), 0, "own endpoints are not cached");
    assert_eq!(
        by_cache.cached_flow_count(),
        shapes().len() * 4,
        "one entry per flow shape and endpoint pair"
    );
    let text = scrape_metrics(&by_cache);
    assert!(text.contains("hubble_flows_to_world_total{"), "{text}");
    assert!(text.contains("hubble_icmp_total{"), "{text}");
    assert_eq!(text, scrape_metrics(&by_labels));
}

#[test]
fn flows_refused_at_the_series_limit_keep_being_refused_and_counted() {
    let source: SharedEndpoint = Arc::new(Shared::new(pod("shop", "web-1", "web", "web")));
    let others: Vec<SharedEndpoint> = (0..3)
        .map(|i| Arc::new(Shared::new(pod("db", &format!("pg-{i}"), "pg", "postgres"))))
        .collect();
    let mut limited = metrics("flow:destinationContext=pod", 2);
    for _ in 0..4 {
        for destination in &others {
            limited.process(&shared(&tcp_flow(syn(), 80), &source, destination));
        }
    }
    let text = scrape_metrics(&limited);
    let counted = samples(&text, "hubble_flows_processed_total");
    assert_eq!(counted.len(), 2, "{counted:?}");
    assert!(counted.iter().all(|line| line.ends_with(" 4")), "{counted:?}");
    let refusals: u64 = limited.collectors().iter().map(|c| c.limited()).sum();
    assert_eq!(refusals, 4, "every flow of the third pod was refused");
}

#[test]
fn handlers_with_filters_see_every_flow() {
    let config = "metrics:\n  - name: flow\n    includeFilters:\n      - source_ip: [\"10.0.0.1\"]\n";
    let mut filtered = crate::metrics::dynamic::parse(Path::new("m.yaml"), config, 100).unwrap();
    let source: SharedEndpoint = Arc::new(Shared::new(pod("shop", "web-1", "web", "web")));
    let destination: SharedEndpoint = Arc::new(Shared::new(pod("db", "pg-0", "pg", "postgres")));
    let mut elsewhere = tcp_flow(syn(), 80);
    elsewhere.ip.as_mut().unwrap().source = "10.9.9.9".into();
    for flow in [tcp_flow(syn(), 80), elsewhere.clone(), tcp_flow(syn(), 80), elsewhere] {
        filtered.process(&shared(&flow, &source, &destination));
    }
    assert_eq!(
        samples(&scrape_metrics(&filtered), "hubble_flows_processed_total"),
        [r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED"} 2"#]
    );
}
