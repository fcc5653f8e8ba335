//! A synthetic event source: realistic-looking flows for development, tests and
//! benchmarks until the datapath feeds the ring.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use sightline_common::shutdown::Shutdown;
use sightline_proto::Timestamp;
use sightline_proto::flow::{
    CiliumEventType, Endpoint, Flow, FlowType, Ip, IpVersion, Layer4, Tcp, TcpFlags, TrafficDirection, Verdict,
    Workload, layer4,
};

use crate::event::{Event, EventSink};
use crate::flow_record::{FlowRecord, Shared, SharedEndpoint};

const NAMESPACES: [&str; 4] = ["default", "kube-system", "shop", "payments"];
/// Distinct synthetic pods; endpoint `k` is pod `k % PODS`.
const PODS: u64 = 4096;

fn endpoint(k: u64) -> Endpoint {
    let pod = k % PODS;
    let namespace = NAMESPACES[(pod % NAMESPACES.len() as u64) as usize];
    Endpoint {
        id: (pod % 500) as u32,
        identity: 1000 + (pod % 64) as u32,
        cluster_name: "default".into(),
        namespace: namespace.to_owned(),
        labels: vec![
            format!("k8s:app=app{}", pod % 8),
            format!("k8s:io.kubernetes.pod.namespace={namespace}"),
        ],
        pod_name: format!("app{}-{pod:05x}", pod % 8),
        workloads: vec![Workload {
            name: format!("app{}", pod % 8),
            kind: "Deployment".into(),
        }],
    }
}

/// The synthetic pods as the enricher attaches them: built once, shared by flows.
fn shared_endpoint(k: u64) -> SharedEndpoint {
    static POOL: LazyLock<Vec<SharedEndpoint>> =
        LazyLock::new(|| (0..PODS).map(|k| Arc::new(Shared::new(endpoint(k)))).collect());
    Arc::clone(&POOL[(k % PODS) as usize])
}

/// The `i`-th synthetic TCP flow as the pipeline carries it: the endpoints
/// attached by reference, as enrichment attaches them.
pub fn record(i: u64, node_name: &str, time: Timestamp) -> FlowRecord {
    let mut record = FlowRecord::new(bare_flow(i, node_name, time));
    record.metadata.source = Some(shared_endpoint(source_pod(i)));
    record.metadata.destination = Some(shared_endpoint(destination_pod(i)));
    record
}

/// The `i`-th synthetic TCP flow: endpoints, ports and verdicts vary with `i`.
pub fn flow(i: u64, node_name: &str, time: Timestamp) -> Flow {
    Flow {
        source: Some(Box::new(endpoint(source_pod(i)))),
        destination: Some(Box::new(endpoint(destination_pod(i)))),
        ..bare_flow(i, node_name, time)
    }
}

fn source_pod(i: u64) -> u64 {
    i
}

fn destination_pod(i: u64) -> u64 {
    i / 3 + 1
}

fn bare_flow(i: u64, node_name: &str, time: Timestamp) -> Flow {
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

/// How many flows are due after `ticks` ticks of `TICKS_PER_SECOND`: the running
/// total, so rates that are not a multiple of the tick rate come out exact over a
/// second instead of rounded up on every tick.
fn due_after(ticks: u64, per_second: u64) -> u64 {
    (u128::from(ticks) * u128::from(per_second) / u128::from(TICKS_PER_SECOND)) as u64
}

const TICKS_PER_SECOND: u64 = 100;

/// Publishes `per_second` flows per second into `sink` until `shutdown`.
pub async fn run(mut sink: impl EventSink, node_name: String, per_second: u64, shutdown: Shutdown) {
    if per_second == 0 {
        return;
    }
    let mut interval = tokio::time::interval(Duration::from_secs(1) / TICKS_PER_SECOND as u32);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut ticks, mut sent) = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = shutdown.cancelled() => return,
        }
        ticks += 1;
        let due = due_after(ticks, per_second);
        while sent < due {
            sink.publish(Event::Flow(Box::new(record(sent, &node_name, Timestamp::now()))));
            sent += 1;
        }
        sink.idle();
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;

    #[test]
    fn rates_that_are_not_multiples_of_the_tick_rate_are_exact_per_second() {
        for rate in [1, 7, 150, 1_001, 99_999] {
            assert_eq!(due_after(TICKS_PER_SECOND, rate), rate, "{rate}/s");
            assert_eq!(due_after(10 * TICKS_PER_SECOND, rate), 10 * rate);
        }
        assert_eq!(due_after(1, 1), 0, "one flow a second is not sent on the first tick");
        assert_eq!(due_after(50, 1), 0);
    }
}
