//! A synthetic event source: realistic-looking flows for development, tests and
//! benchmarks until the datapath feeds the ring.

use std::time::Duration;

use sightline_proto::Timestamp;
use sightline_proto::flow::{
    CiliumEventType, Endpoint, Flow, FlowType, Ip, IpVersion, Layer4, Tcp, TcpFlags, TrafficDirection, Verdict,
    Workload, layer4,
};
use tokio::sync::watch;

use crate::event::{Event, EventSink};

const NAMESPACES: [&str; 4] = ["default", "kube-system", "shop", "payments"];

/// The `i`-th synthetic TCP flow: endpoints, ports and verdicts vary with `i`.
pub fn flow(i: u64, node_name: &str, time: Timestamp) -> Flow {
    let ns = |k: u64| NAMESPACES[(k % NAMESPACES.len() as u64) as usize].to_owned();
    let endpoint = |k: u64| Endpoint {
        id: (k % 500) as u32,
        identity: 1000 + (k % 64) as u32,
        cluster_name: "default".into(),
        namespace: ns(k),
        labels: vec![
            format!("k8s:app=app{}", k % 8),
            format!("k8s:io.kubernetes.pod.namespace={}", ns(k)),
        ],
        pod_name: format!("app{}-{:05x}", k % 8, k % 4096),
        workloads: vec![Workload {
            name: format!("app{}", k % 8),
            kind: "Deployment".into(),
        }],
    };
    Flow {
        time: Some(time),
        uuid: format!("00000000-0000-4000-8000-{i:012x}"),
        verdict: if i % 10 == 9 {
            Verdict::Dropped as i32
        } else {
            Verdict::Forwarded as i32
        },
        ip: Some(Ip {
            source: format!("10.0.{}.{}", (i >> 8) % 256, i % 256),
            destination: format!("10.1.{}.{}", (i >> 4) % 256, (i * 7) % 256),
            ip_version: IpVersion::IPv4 as i32,
            ..Default::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(Tcp {
                source_port: 30000 + (i % 20000) as u32,
                destination_port: [80, 443, 8080, 5432][(i % 4) as usize],
                flags: Some(TcpFlags {
                    syn: i.is_multiple_of(3),
                    ack: true,
                    ..Default::default()
                }),
            })),
        }),
        source: Some(Box::new(endpoint(i))),
        destination: Some(Box::new(endpoint(i / 3 + 1))),
        r#type: FlowType::L3L4 as i32,
        node_name: node_name.to_owned(),
        event_type: Some(CiliumEventType { r#type: 4, sub_type: 0 }),
        traffic_direction: if i.is_multiple_of(2) {
            TrafficDirection::Egress as i32
        } else {
            TrafficDirection::Ingress as i32
        },
        is_reply: Some(pbjson_types_bool(i % 2 == 1)),
        ..Default::default()
    }
}

fn pbjson_types_bool(value: bool) -> sightline_proto::wkt::BoolValue {
    sightline_proto::wkt::BoolValue { value }
}

/// Publishes `per_second` flows per second into `sink` until `shutdown`.
pub async fn run(mut sink: impl EventSink, node_name: String, per_second: u64, mut shutdown: watch::Receiver<bool>) {
    if per_second == 0 {
        return;
    }
    let tick = Duration::from_millis(10);
    let per_tick = per_second.div_ceil(100);
    let mut interval = tokio::time::interval(tick);
    let mut i = 0u64;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        for _ in 0..per_tick {
            sink.publish(Event::flow(flow(i, &node_name, Timestamp::now())));
            i += 1;
        }
        sink.idle();
    }
}
