//! The direct flow writer against the reference path (the generated serde code
//! over the materialised `flow.Flow`), for arbitrary records: metadata attached or
//! not, deferred fields or the flow's own, strings with characters that need
//! escaping, enum numbers without a name.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;

use proptest::prelude::*;
use sightline_proto::Timestamp;
use sightline_proto::flow::{
    Aggregate, CiliumEventType, Emitter, Endpoint, Ethernet, FileInfo, Flow, Ip, Layer4, NetworkInterface, Policy,
    Service, Tcp, TcpFlags, Udp, Workload, layer4,
};
use sightline_proto::observer::ExportEvent;
use sightline_proto::observer::export_event::ResponseTypes;

use crate::event::Event;
use crate::export::encode::{LineEncoder, write_line_generic};
use crate::flow_record::summary::{DropNote, L4Summary};
use crate::flow_record::{FlowRecord, Shared};
use crate::observer::fieldmask::FlowMask;

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::char::range('a', 'z'),
            1 => prop::sample::select(vec!['<', '>', '&', '"', '\\', '\n', '\u{1}', '\u{2028}', '\u{2029}', 'é', '€']),
            1 => any::<char>(),
        ],
        0..6,
    )
    .prop_map(String::from_iter)
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..3)
}

/// Mostly named enum values, sometimes 0 (omitted), rarely a number without a name.
fn enumeration() -> impl Strategy<Value = i32> {
    prop_oneof![3 => Just(0), 8 => 1..8i32, 1 => Just(9999)]
}

fn small() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), any::<u32>()]
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    (
        small(),
        small(),
        text(),
        text(),
        texts(),
        text(),
        prop::collection::vec((text(), text()), 0..2),
    )
        .prop_map(
            |(id, identity, cluster_name, namespace, labels, pod_name, workloads)| Endpoint {
                id,
                identity,
                cluster_name,
                namespace,
                labels,
                pod_name,
                workloads: workloads
                    .into_iter()
                    .map(|(name, kind)| Workload { name, kind })
                    .collect(),
            },
        )
}

fn service() -> impl Strategy<Value = Service> {
    (text(), text()).prop_map(|(name, namespace)| Service { name, namespace })
}

fn time() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        8 => (0i64..4_000_000_000, 0i32..1_000_000_000).prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }),
        1 => Just(Timestamp { seconds: 300_000_000_000, nanos: 0 }),
    ]
}

fn l4() -> impl Strategy<Value = Layer4> {
    prop_oneof![
        Just(Layer4 { protocol: None }),
        (small(), small(), prop::option::of(any::<[bool; 9]>())).prop_map(|(source_port, destination_port, flags)| {
            Layer4 {
                protocol: Some(layer4::Protocol::Tcp(Tcp {
                    source_port,
                    destination_port,
                    flags: flags.map(|[fin, syn, rst, psh, ack, urg, ece, cwr, ns]| TcpFlags {
                        fin,
                        syn,
                        rst,
                        psh,
                        ack,
                        urg,
                        ece,
                        cwr,
                        ns,
                    }),
                })),
            }
        }),
        (small(), small()).prop_map(|(source_port, destination_port)| Layer4 {
            protocol: Some(layer4::Protocol::Udp(Udp {
                source_port,
                destination_port,
            })),
        }),
        (small(), small()).prop_map(|(r#type, code)| Layer4 {
            protocol: Some(layer4::Protocol::IcmPv4(sightline_proto::flow::IcmPv4 { r#type, code })),
        }),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (text(), text(), texts(), any::<u64>(), text()).prop_map(|(name, namespace, labels, revision, kind)| Policy {
        name,
        namespace,
        labels,
        revision,
        kind,
    })
}

/// A `flow.Flow` with any of the fields the exporter writes.
#[allow(deprecated)]
fn flow() -> BoxedStrategy<Flow> {
    let identity = (
        prop::option::of(time()),
        text(),
        prop::option::of((text(), text())),
        enumeration(),
        small(),
        enumeration(),
        prop::option::of((text(), text())),
        prop::option::of((text(), text(), text(), enumeration(), any::<bool>())),
        prop::option::of(l4()),
    );
    let endpoints = (
        prop::option::of(endpoint()),
        prop::option::of(endpoint()),
        enumeration(),
        text(),
        texts(),
        texts(),
        texts(),
        any::<bool>(),
        prop::option::of((any::<i32>(), any::<i32>())),
        prop::option::of(service()),
        prop::option::of(service()),
    );
    let trace = (
        enumeration(),
        small(),
        enumeration(),
        enumeration(),
        prop::option::of((text(), small())),
        enumeration(),
        prop::option::of(any::<bool>()),
        enumeration(),
        prop::option::of((small(), text())),
        small(),
        enumeration(),
    );
    let tail = (
        prop_oneof![Just(0u64), any::<u64>()],
        prop_oneof![Just(0u64), any::<u64>()],
        text(),
        prop::collection::vec(policy(), 0..2),
        prop::collection::vec(policy(), 0..2),
        texts(),
        prop::option::of((small(), small(), small())),
    );
    (identity, endpoints, trace, tail)
        .prop_map(|(identity, endpoints, trace, tail)| {
            let (time, uuid, emitter, verdict, drop_reason, auth_type, ethernet, ip, l4) = identity;
            let (
                source,
                destination,
                r#type,
                node_name,
                node_labels,
                source_names,
                destination_names,
                reply,
                event_type,
                source_service,
                destination_service,
            ) = endpoints;
            let (
                traffic_direction,
                policy_match_type,
                trace_observation_point,
                trace_reason,
                file,
                drop_reason_desc,
                is_reply,
                debug_capture_point,
                interface,
                proxy_port,
                sock_xlate_point,
            ) = trace;
            let (socket_cookie, cgroup_id, summary, egress_allowed_by, ingress_denied_by, policy_log, aggregate) = tail;
            Flow {
                time,
                uuid,
                emitter: emitter.map(|(name, version)| Box::new(Emitter { name, version })),
                verdict,
                drop_reason,
                auth_type,
                ethernet: ethernet.map(|(source, destination)| Box::new(Ethernet { source, destination })),
                ip: ip.map(|(source, source_xlated, destination, ip_version, encrypted)| Ip {
                    source,
                    source_xlated,
                    destination,
                    ip_version: ip_version % 4,
                    encrypted,
                }),
                l4,
                source: source.map(Box::new),
                destination: destination.map(Box::new),
                r#type: r#type % 5,
                node_name,
                node_labels,
                source_names,
                destination_names,
                reply,
                event_type: event_type.map(|(r#type, sub_type)| CiliumEventType { r#type, sub_type }),
                source_service: source_service.map(Box::new),
                destination_service: destination_service.map(Box::new),
                traffic_direction: traffic_direction % 4,
                policy_match_type,
                trace_observation_point,
                trace_reason,
                file: file.map(|(name, line)| Box::new(FileInfo { name, line })),
                drop_reason_desc: if drop_reason_desc == 9999 {
                    9999
                } else {
                    drop_reason_desc * 30
                },
                is_reply: is_reply.map(|value| sightline_proto::wkt::BoolValue { value }),
                debug_capture_point,
                interface: interface.map(|(index, name)| NetworkInterface { index, name }),
                proxy_port,
                sock_xlate_point,
                socket_cookie,
                cgroup_id,
                summary,
                egress_allowed_by,
                ingress_denied_by,
                policy_log,
                aggregate: aggregate.map(
                    |(ingress_flow_count, egress_flow_count, unknown_direction_flow_count)| Aggregate {
                        ingress_flow_count,
                        egress_flow_count,
                        unknown_direction_flow_count,
                    },
                ),
                ..Flow::default()
            }
        })
        .boxed()
}

fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from)
    ]
}

/// A record: a flow plus, sometimes, metadata and deferred fields (which win only
/// where the flow's own field is empty, as the record's rules say).
fn record() -> BoxedStrategy<FlowRecord> {
    let metadata = (
        prop::option::of(endpoint()),
        prop::option::of(endpoint()),
        prop::option::of(service()),
        prop::option::of(service()),
        prop::option::of(texts()),
        prop::option::of(texts()),
    );
    let deferred = (
        prop::option::of(any::<u128>()),
        prop::option::of(prop::sample::select(vec!["1.18.0", "v0.0.1<&>"])),
        prop::option::of(text()),
        prop::option::of(any::<[u64; 2]>()),
        prop::option::of((small(), text())),
        prop::option::of((
            prop::sample::select(vec![1u8, 6, 17, 58, 132, 99]),
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            prop::option::of((any::<u32>(), prop::option::of(text()), 0u64..4)),
        )),
        prop::option::of((address(), address())),
        any::<bool>(),
    );
    (flow(), metadata, deferred)
        .prop_map(|(flow, metadata, deferred)| {
            let (source, destination, source_service, destination_service, source_names, destination_names) = metadata;
            let (uuid, emitter_version, node_name, ethernet, interface, summary, addresses, strip_own) = deferred;
            let mut record = FlowRecord::new(flow);
            if strip_own {
                // The decoder's records: these fields only in their deferred form.
                record.flow.uuid.clear();
                record.flow.emitter = None;
                record.flow.node_name.clear();
                record.flow.ethernet = None;
                record.flow.ip = None;
                record.flow.interface = None;
                #[allow(deprecated)]
                record.flow.summary.clear();
            }
            record.metadata.source = source.map(|e| Arc::new(Shared::new(e)));
            record.metadata.destination = destination.map(|e| Arc::new(Shared::new(e)));
            record.metadata.source_service = source_service.map(|s| Arc::new(Shared::new(s)));
            record.metadata.destination_service = destination_service.map(|s| Arc::new(Shared::new(s)));
            record.metadata.source_names = source_names.map(Arc::from);
            record.metadata.destination_names = destination_names.map(Arc::from);
            record.deferred.uuid = uuid.map(uuid::Uuid::from_u128);
            record.deferred.emitter_version = emitter_version;
            record.deferred.node_name = node_name.map(Arc::from);
            record.deferred.ethernet = ethernet.map(|[a, b]| [a & 0xffff_ffff_ffff, b & 0xffff_ffff_ffff]);
            record.deferred.interface = interface.map(|(index, name)| (index, Arc::from(name)));
            record.deferred.summary = summary.map(|(protocol, tcp_flags, icmp_type, icmp_code, drop)| L4Summary {
                protocol,
                tcp_flags,
                icmp_type,
                icmp_code,
                drop: drop.map(|(reason, kernel_name, packets)| DropNote {
                    reason,
                    kernel_name: kernel_name.map(Arc::from),
                    packets,
                }),
            });
            record.addresses = addresses;
            record
        })
        .boxed()
}

fn fast(record: &FlowRecord) -> Vec<u8> {
    let mut out = Vec::new();
    LineEncoder::new("agent-node".into(), None).write(&Event::Flow(Box::new(record.clone())), &mut out);
    out
}

fn reference(record: &FlowRecord) -> Vec<u8> {
    let mut out = Vec::new();
    write_line_generic(&Event::Flow(Box::new(record.clone())), "agent-node", None, &mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Byte for byte what the generated serializer writes, and JSON-equal to the
    /// `ExportEvent` message itself serialised.
    #[test]
    fn the_direct_writer_matches_the_reference_serializer(record in record()) {
        let ours = fast(&record);
        let theirs = reference(&record);
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        let flow = record.to_flow();
        let message = ExportEvent {
            node_name: flow.node_name.clone(),
            time: flow.time,
            response_types: Some(ResponseTypes::Flow(flow)),
        };
        match serde_json::to_value(&message) {
            Ok(expected) => {
                let line: serde_json::Value = serde_json::from_slice(&ours).unwrap();
                prop_assert_eq!(line, expected);
            }
            Err(_) => prop_assert!(ours.is_empty(), "a flow the reference refuses is not written"),
        }
    }
}

fn mask() -> impl Strategy<Value = Vec<String>> {
    prop::sample::select(vec![
        vec!["time", "uuid", "verdict", "node_name"],
        vec!["source.pod_name", "destination", "IP.source", "l4.TCP.destination_port"],
        vec![
            "source_names",
            "destination_service",
            "Summary",
            "interface",
            "ethernet",
        ],
        vec!["aggregate", "is_reply", "egress_allowed_by", "emitter.version"],
    ])
    .prop_map(|paths| paths.into_iter().map(str::to_owned).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// With a field mask the line is still byte for byte the reference's.
    #[test]
    fn masked_lines_match_the_reference(record in record(), paths in mask()) {
        let mask = FlowMask::compile(&paths).unwrap();
        let event = Event::Flow(Box::new(record));
        let mut ours = Vec::new();
        LineEncoder::new("agent-node".into(), Some(mask.clone())).write(&event, &mut ours);
        let mut theirs = Vec::new();
        write_line_generic(&event, "agent-node", Some(&mask), &mut theirs);
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
    }
}

/// The synthetic source's records (endpoints attached by reference, the shape of
/// an enriched datapath flow) take the direct path and match the reference.
#[test]
fn enriched_records_match_the_reference() {
    let now = Timestamp::now();
    for i in 0..64 {
        let record = crate::synthetic::record(i, "node-1", now);
        assert_eq!(
            String::from_utf8(fast(&record)).unwrap(),
            String::from_utf8(reference(&record)).unwrap()
        );
        let mut scratch = String::new();
        let mut out = Vec::new();
        assert_eq!(
            super::write_flow_line(&record, &mut scratch, &mut out),
            Ok(()),
            "no fallback"
        );
    }
}
