//! Flows for the handler tables, and a scrape of what the handlers counted.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use sightline_proto::flow::{
    CiliumEventType, Dns, Endpoint, Flow, Http, IcmPv4, IcmPv6, Ip, IpVersion, Kafka, L7FlowType, Layer4, Layer7, Tcp,
    TcpFlags, TrafficDirection, Udp, Verdict, Workload, layer4, layer7,
};

use pbjson_types::BoolValue;

use crate::flow_record::{FlowRecord, Shared};
use crate::metrics::names::{MESSAGE_TYPE_ACCESS_LOG, MESSAGE_TYPE_DROP, MESSAGE_TYPE_TRACE};
use crate::metrics::options::parse_list;
use crate::metrics::{FlowFamilies, FlowMetrics};

pub(crate) fn pod(namespace: &str, name: &str, workload: &str, app: &str) -> Endpoint {
    Endpoint {
        identity: 1234,
        namespace: namespace.into(),
        pod_name: name.into(),
        labels: vec![
            format!("k8s:app={app}"),
            format!("k8s:io.kubernetes.pod.namespace={namespace}"),
        ],
        workloads: vec![Workload {
            name: workload.into(),
            kind: "Deployment".into(),
        }],
        ..Endpoint::default()
    }
}

pub(crate) fn world() -> Endpoint {
    Endpoint {
        identity: 2,
        labels: vec!["reserved:world".into()],
        ..Endpoint::default()
    }
}

/// A forwarded TCP packet from shop/web-1 to db/pg-0 traced to the endpoint.
pub(crate) fn tcp_flow(flags: TcpFlags, port: u32) -> Flow {
    Flow {
        verdict: Verdict::Forwarded as i32,
        event_type: Some(CiliumEventType {
            r#type: MESSAGE_TYPE_TRACE,
            sub_type: 0,
        }),
        ip: Some(Ip {
            source: "10.0.0.1".into(),
            destination: "10.0.1.2".into(),
            ip_version: IpVersion::IPv4 as i32,
            ..Ip::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(Tcp {
                source_port: 40000,
                destination_port: port,
                flags: Some(flags),
            })),
        }),
        source: Some(Box::new(pod("shop", "web-7d4f9-xk2p9", "web", "web"))),
        destination: Some(Box::new(pod("db", "pg-0", "pg", "postgres"))),
        traffic_direction: TrafficDirection::Egress as i32,
        is_reply: Some(BoolValue { value: false }),
        ..Flow::default()
    }
}

pub(crate) fn syn() -> TcpFlags {
    TcpFlags {
        syn: true,
        ..TcpFlags::default()
    }
}

pub(crate) fn dropped(mut flow: Flow, reason: i32) -> Flow {
    flow.verdict = Verdict::Dropped as i32;
    flow.drop_reason_desc = reason;
    flow.event_type = Some(CiliumEventType {
        r#type: MESSAGE_TYPE_DROP,
        sub_type: reason,
    });
    flow
}

pub(crate) fn udp_flow(port: u32) -> Flow {
    let mut flow = tcp_flow(TcpFlags::default(), 0);
    flow.l4 = Some(Layer4 {
        protocol: Some(layer4::Protocol::Udp(Udp {
            source_port: 50000,
            destination_port: port,
        })),
    });
    flow
}

pub(crate) fn icmp_flow(v6: bool, kind: u32, code: u32) -> Flow {
    let mut flow = tcp_flow(TcpFlags::default(), 0);
    flow.l4 = Some(Layer4 {
        protocol: Some(if v6 {
            layer4::Protocol::IcmPv6(IcmPv6 { r#type: kind, code })
        } else {
            layer4::Protocol::IcmPv4(IcmPv4 { r#type: kind, code })
        }),
    });
    flow
}

fn l7(mut flow: Flow, kind: L7FlowType, latency_ns: u64, record: layer7::Record) -> Flow {
    flow.event_type = Some(CiliumEventType {
        r#type: MESSAGE_TYPE_ACCESS_LOG,
        sub_type: 0,
    });
    flow.l7 = Some(Box::new(Layer7 {
        r#type: kind as i32,
        latency_ns,
        record: Some(record),
    }));
    flow
}

pub(crate) fn dns_flow(reply: bool, query: &str, qtype: &str, rcode: u32, ips: &[&str], rrtypes: &[&str]) -> Flow {
    let mut flow = l7(
        udp_flow(53),
        if reply {
            L7FlowType::Response
        } else {
            L7FlowType::Request
        },
        0,
        layer7::Record::Dns(Dns {
            query: query.into(),
            ips: ips.iter().map(|s| s.to_string()).collect(),
            rcode,
            qtypes: vec![qtype.into()],
            rrtypes: rrtypes.iter().map(|s| s.to_string()).collect(),
            ..Dns::default()
        }),
    );
    flow.is_reply = Some(BoolValue { value: reply });
    flow
}

pub(crate) fn http_flow(kind: L7FlowType, method: &str, code: u32, latency_ns: u64) -> Flow {
    l7(
        tcp_flow(TcpFlags::default(), 8080),
        kind,
        latency_ns,
        layer7::Record::Http(Http {
            code,
            method: method.into(),
            url: "http://db/".into(),
            protocol: "HTTP/1.1".into(),
            headers: Vec::new(),
        }),
    )
}

#[allow(deprecated)]
pub(crate) fn kafka_flow(kind: L7FlowType, topic: &str, error_code: i32) -> Flow {
    l7(
        tcp_flow(TcpFlags::default(), 9092),
        kind,
        2_000_000,
        layer7::Record::Kafka(Kafka {
            error_code,
            api_version: 1,
            api_key: "produce".into(),
            correlation_id: 7,
            topic: topic.into(),
        }),
    )
}

/// Runs `flows` through the handlers `--metrics` `list` configures and returns
/// the scrape (OpenMetrics text) of what they counted.
pub(crate) fn scrape(list: &str, flows: &[Flow]) -> String {
    let mut metrics = FlowMetrics::new(&parse_list(&[list]).expect("valid list"), 10_000).expect("valid handlers");
    for flow in flows {
        metrics.process(&FlowRecord::new(flow.clone()));
    }
    scrape_metrics(&metrics)
}

pub(crate) fn scrape_metrics(metrics: &FlowMetrics) -> String {
    let families = FlowFamilies::default();
    families.replace(metrics.collectors());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    text
}

/// The sample lines of `metric` (no comments), sorted, for exact comparisons.
pub(crate) fn samples(text: &str, metric: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")) || line.starts_with(&format!("{metric} ")))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// Wraps an endpoint as enrichment attaches it (by reference), so tests also
/// cover the accessor path.
pub(crate) fn attached(flow: Flow) -> FlowRecord {
    let mut record = FlowRecord::new(flow);
    if let Some(source) = record.flow.source.take() {
        record.metadata.source = Some(Arc::new(Shared::new(*source)));
    }
    record
}
