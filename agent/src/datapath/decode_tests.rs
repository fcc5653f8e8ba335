#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use prost::Message;
use sightline_bpf_common::{DnsEvent, FlowEvent, IPPROTO_TCP, IPPROTO_UDP, hook, kind, tcp_flags};
use sightline_proto::flow::{DropReason, Flow, Verdict};

use super::*;
use crate::event::Event;

fn bytes<T: aya::Pod>(value: &T) -> Vec<u8> {
    sightline_bpf_common::record_bytes(value).to_vec()
}

fn tcp_event(flags: u16, from_client: bool) -> FlowEvent {
    let mut event = FlowEvent {
        kind: kind::TRACE,
        timestamp_ns: 1_000,
        tcp_flags: flags,
        ..Default::default()
    };
    let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (src, dst, sport, dport) = if from_client {
        (a, b, 40000, 80)
    } else {
        (b, a, 80, 40000)
    };
    event.key.src_addr[..4].copy_from_slice(&src);
    event.key.dst_addr[..4].copy_from_slice(&dst);
    event.key.src_port = sport;
    event.key.dst_port = dport;
    event.key.protocol = IPPROTO_TCP;
    event.key.ip_version = 4;
    event.key.ifindex = 7;
    event.key.hook = if from_client { hook::TC_INGRESS } else { hook::TC_EGRESS };
    event
}

const NO_SOCKET: u32 = 3;

fn decoder() -> Decoder {
    let names = HashMap::from([
        (77, "NETFILTER_DROP".to_owned()),
        (78, "QDISC_DROP".to_owned()),
        (NO_SOCKET, "NO_SOCKET".to_owned()),
    ]);
    let mut decoder = Decoder::new("node-1".to_owned(), DropReasonNames::new(names));
    decoder.set_interface(
        7,
        Some(InterfaceInfo {
            name: "lxc1".to_owned(),
            role: InterfaceRole::Endpoint,
        }),
    );
    decoder
}

fn flow(event: Event) -> Flow {
    match event {
        Event::Flow(flow) => flow.into_flow(),
        other => panic!("not a flow: {other:?}"),
    }
}

#[allow(deprecated)]
fn summary(flow: &Flow) -> &str {
    &flow.summary
}

#[test]
fn handshake_directions_and_replies() {
    let mut decoder = decoder();
    let syn = flow(decoder.decode(&bytes(&tcp_event(tcp_flags::SYN, true))).unwrap());
    let synack = flow(
        decoder
            .decode(&bytes(&tcp_event(tcp_flags::SYN | tcp_flags::ACK, false)))
            .unwrap(),
    );
    let ack = flow(decoder.decode(&bytes(&tcp_event(tcp_flags::ACK, true))).unwrap());
    assert_eq!(summary(&syn), "TCP Flags: SYN");
    assert_eq!(summary(&synack), "TCP Flags: SYN, ACK");
    assert_eq!(
        [&syn, &synack, &ack].map(|f| f.is_reply.unwrap().value),
        [false, true, false]
    );
    assert_eq!(syn.traffic_direction, TrafficDirection::Egress as i32);
    assert_eq!(synack.trace_observation_point, TraceObservationPoint::ToEndpoint as i32);
    assert_eq!(syn.interface.as_ref().unwrap().name, "lxc1");
    assert_eq!(syn.ip.as_ref().unwrap().source, "10.0.0.1");
    assert_eq!(syn.event_type.unwrap().r#type, MONITOR_TRACE);
    assert_eq!(syn.node_name, "node-1");
}

#[test]
fn first_seen_direction_is_the_request_without_syn() {
    let mut decoder = decoder();
    let later = flow(decoder.decode(&bytes(&tcp_event(tcp_flags::ACK, false))).unwrap());
    let other_way = flow(decoder.decode(&bytes(&tcp_event(tcp_flags::ACK, true))).unwrap());
    assert_eq!(
        [later.is_reply.unwrap().value, other_way.is_reply.unwrap().value],
        [false, true]
    );
}

#[test]
fn drops_map_kernel_reasons_or_name_them() {
    let mut decoder = decoder();
    let mut event = tcp_event(tcp_flags::SYN, true);
    event.kind = kind::DROP;
    event.reason = 77;
    let mapped = flow(decoder.decode(&bytes(&event)).unwrap());
    assert_eq!(mapped.verdict, Verdict::Dropped as i32);
    assert_eq!(mapped.drop_reason_desc, DropReason::PolicyDenied as i32);
    assert_eq!(summary(&mapped), "TCP Flags: SYN (kernel drop reason: NETFILTER_DROP)");
    event.reason = 78;
    event.packets = 5;
    let unmapped = flow(decoder.decode(&bytes(&event)).unwrap());
    assert_eq!(unmapped.drop_reason_desc, DropReason::Unknown as i32);
    assert_eq!(summary(&unmapped), "TCP Flags: SYN (kernel drop reason: QDISC_DROP) x5");
    assert_eq!(unmapped.event_type.unwrap().r#type, MONITOR_DROP);
}

#[test]
fn ignored_drop_reasons_are_skipped_and_unknown_names_reported() {
    let mut decoder = decoder();
    let names = ["SKB_DROP_REASON_QDISC_DROP".to_owned(), "NO_SUCH_REASON".to_owned()];
    let unknown = decoder.ignore_drop_reasons(&names);
    assert_eq!(unknown, ["NO_SUCH_REASON"]);
    let mut event = tcp_event(tcp_flags::SYN, true);
    event.kind = kind::DROP;
    event.reason = 78;
    assert!(decoder.ignores(&bytes(&event)), "QDISC_DROP is ignored");
    event.reason = 77;
    assert!(!decoder.ignores(&bytes(&event)), "NETFILTER_DROP is still reported");
    event.kind = kind::TRACE;
    event.reason = 78;
    assert!(!decoder.ignores(&bytes(&event)), "only drops are ever ignored");
}

#[test]
fn echo_replies_freed_without_a_ping_socket_are_not_drops() {
    let decoder = decoder();
    let mut event = tcp_event(0, true);
    event.kind = kind::DROP;
    event.reason = NO_SOCKET;
    event.key.protocol = 1;
    event.icmp_type = 0;
    assert!(decoder.ignores(&bytes(&event)), "ICMPv4 echo reply");
    event.key.protocol = 58;
    event.icmp_type = 129;
    assert!(decoder.ignores(&bytes(&event)), "ICMPv6 echo reply");
    event.icmp_type = 128;
    assert!(
        !decoder.ignores(&bytes(&event)),
        "an echo request nobody takes is a drop"
    );
    event.key.protocol = 6;
    event.icmp_type = 0;
    assert!(
        !decoder.ignores(&bytes(&event)),
        "a TCP segment without a socket is a drop"
    );
}

#[test]
fn malformed_records_are_errors() {
    let mut decoder = decoder();
    assert_eq!(decoder.decode(&[0; 10]).unwrap_err(), DecodeError::ShortRecord(10));
    let mut event = tcp_event(0, true);
    event.kind = 99;
    assert_eq!(
        decoder.decode(&bytes(&event)).unwrap_err(),
        DecodeError::UnknownKind(99)
    );
    event.kind = kind::DNS;
    event.dns_len = 40;
    assert!(matches!(
        decoder.decode(&bytes(&event)),
        Err(DecodeError::DnsLength { claimed: 40, .. })
    ));
    let mut dns = DnsEvent {
        flow: event,
        payload: [0; 512],
    };
    dns.flow.dns_len = 3;
    assert!(matches!(decoder.decode(&bytes(&dns)), Err(DecodeError::Dns(_))));
}

#[test]
fn dns_answer_latency_is_matched_by_id_and_tuple() {
    let mut decoder = decoder();
    let query = [0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1];
    let mut answer = query.to_vec();
    answer[2] = 0x81;
    let mut asked = DnsEvent {
        flow: tcp_event(0, true),
        payload: [0; 512],
    };
    asked.flow.kind = kind::DNS;
    asked.flow.key.protocol = IPPROTO_UDP;
    asked.flow.key.dst_port = 53;
    asked.flow.dns_len = query.len() as u16;
    asked.payload[..query.len()].copy_from_slice(&query);
    let mut answered = DnsEvent {
        flow: tcp_event(0, false),
        payload: [0; 512],
    };
    answered.flow.kind = kind::DNS;
    answered.flow.key.protocol = IPPROTO_UDP;
    answered.flow.key.src_port = 53;
    answered.flow.timestamp_ns = 1_000 + 250_000;
    answered.flow.dns_len = answer.len() as u16;
    answered.payload[..answer.len()].copy_from_slice(&answer);
    let request = flow(decoder.decode(&bytes(&asked)).unwrap());
    let response = flow(decoder.decode(&bytes(&answered)).unwrap());
    assert_eq!(summary(&request), "DNS Query a. A");
    assert_eq!(request.l7.unwrap().r#type, L7FlowType::Request as i32);
    assert_eq!(response.l7.as_ref().unwrap().latency_ns, 250_000);
    assert_eq!(response.event_type.unwrap().r#type, MONITOR_L7);
}

#[test]
fn a_decoded_record_encodes_as_its_materialised_flow() {
    let mut decoder = decoder();
    let mut drop = tcp_event(tcp_flags::SYN, true);
    drop.kind = kind::DROP;
    drop.reason = 77;
    drop.packets = 3;
    drop.eth_src = [2, 0xab, 0, 0x10, 0xff, 9];
    for event in [tcp_event(tcp_flags::SYN, true), drop] {
        let Event::Flow(record) = decoder.decode(&bytes(&event)).unwrap() else {
            panic!("not a flow")
        };
        let mut wire = prost::bytes::BytesMut::new();
        record.encode_as_flow(1, &mut wire);
        let materialised = record.to_flow();
        let mut reference = Vec::new();
        prost::encoding::message::encode(1, &materialised, &mut reference);
        assert_eq!(wire.len(), reference.len());
        let response = sightline_proto::observer::GetFlowsResponse::decode(&wire[..]).unwrap();
        let Some(sightline_proto::observer::get_flows_response::ResponseTypes::Flow(decoded)) = response.response_types
        else {
            panic!("no flow in {response:?}")
        };
        assert_eq!(decoded, materialised);
        assert_eq!(decoded.ip.unwrap().source, "10.0.0.1");
        assert_eq!(decoded.interface.unwrap().name, "lxc1");
        assert_eq!(decoded.node_name, "node-1");
        assert_eq!(decoded.uuid.len(), 36);
        assert_eq!(decoded.emitter.unwrap().name, "Hubble");
    }
}

/// Filters read the fields the decoder leaves unformatted the same as written ones.
#[test]
fn filters_see_deferred_fields() {
    use sightline_proto::flow::FlowFilter;

    use crate::observer::filter::compile;

    let mut decoder = decoder();
    let Event::Flow(record) = decoder.decode(&bytes(&tcp_event(tcp_flags::SYN, true))).unwrap() else {
        panic!("not a flow")
    };
    let uuid = record.to_flow().uuid;
    let matching = [
        FlowFilter {
            uuid: vec![uuid],
            ..Default::default()
        },
        FlowFilter {
            source_ip: vec!["10.0.0.0/24".into()],
            destination_ip: vec!["10.0.0.2".into()],
            ..Default::default()
        },
        FlowFilter {
            node_name: vec!["node-*".into()],
            ..Default::default()
        },
        FlowFilter {
            interface: vec![sightline_proto::flow::NetworkInterface {
                index: 0,
                name: "lxc1".into(),
            }],
            ..Default::default()
        },
        FlowFilter {
            ip_version: vec![sightline_proto::flow::IpVersion::IPv4 as i32],
            ..Default::default()
        },
    ];
    for filter in matching {
        assert!(compile(&filter).unwrap().matches_flow(&record), "{filter:?}");
    }
    let missing = [
        FlowFilter {
            uuid: vec!["00000000-0000-4000-8000-000000000000".into()],
            ..Default::default()
        },
        FlowFilter {
            source_ip: vec!["10.0.0.2".into()],
            ..Default::default()
        },
        FlowFilter {
            node_name: vec!["other".into()],
            ..Default::default()
        },
        FlowFilter {
            ip_version: vec![sightline_proto::flow::IpVersion::IPv6 as i32],
            ..Default::default()
        },
    ];
    for filter in missing {
        assert!(!compile(&filter).unwrap().matches_flow(&record), "{filter:?}");
    }
}

#[test]
fn dns_is_l7_only_at_the_clients_pod_and_a_trace_at_the_servers() {
    let mut decoder = decoder();
    decoder.set_interface(
        8,
        Some(InterfaceInfo {
            name: "lxc-dns".to_owned(),
            role: InterfaceRole::Endpoint,
        }),
    );
    let query = [0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1];
    let mut answer = query.to_vec();
    answer[2] = 0x81;
    let message = |payload: &[u8], from_client: bool, ifindex: u32, hook_point: u8| {
        let mut event = DnsEvent {
            flow: tcp_event(0, from_client),
            payload: [0; 512],
        };
        event.flow.kind = kind::DNS;
        event.flow.key.protocol = IPPROTO_UDP;
        event.flow.key.ifindex = ifindex;
        event.flow.key.hook = hook_point;
        event.flow.dns_len = payload.len() as u16;
        event.payload[..payload.len()].copy_from_slice(payload);
        bytes(&event)
    };
    // Client pod on veth 7, DNS pod on veth 8, both on this node: the query
    // leaves the client (TC ingress on 7), enters the server (TC egress on 8);
    // the answer leaves the server (TC ingress on 8), enters the client (TC egress on 7).
    let seen = [
        message(&query, true, 7, hook::TC_INGRESS),
        message(&query, true, 8, hook::TC_EGRESS),
        message(&answer, false, 8, hook::TC_INGRESS),
        message(&answer, false, 7, hook::TC_EGRESS),
    ]
    .map(|record| flow(decoder.decode(&record).unwrap()));
    let types: Vec<(i32, Option<i32>)> = seen
        .iter()
        .map(|f| (f.r#type, f.l7.as_ref().map(|l| l.r#type)))
        .collect();
    assert_eq!(
        types,
        [
            (FlowType::L7 as i32, Some(L7FlowType::Request as i32)),
            (FlowType::L3L4 as i32, None),
            (FlowType::L3L4 as i32, None),
            (FlowType::L7 as i32, Some(L7FlowType::Response as i32)),
        ]
    );
    assert_eq!(seen[1].event_type.as_ref().map(|e| e.r#type), Some(MONITOR_TRACE));
}

#[test]
fn every_dns_message_of_a_tcp_segment_is_a_flow() {
    let mut decoder = decoder();
    let query = |id: u8, name: u8| vec![0, id, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, name, 0, 0, 1, 0, 1];
    let mut segment = Vec::new();
    for message in [query(1, b'a'), query(2, b'b')] {
        segment.extend((message.len() as u16).to_be_bytes());
        segment.extend(message);
    }
    let mut event = DnsEvent {
        flow: tcp_event(tcp_flags::ACK, true),
        payload: [0; 512],
    };
    event.flow.kind = kind::DNS;
    event.flow.key.dst_port = 53;
    event.flow.dns_len = segment.len() as u16;
    event.payload[..segment.len()].copy_from_slice(&segment);
    let mut flows = Vec::new();
    decoder
        .decode_each(&bytes(&event), &mut |decoded| flows.push(flow(decoded)))
        .unwrap();
    let summaries: Vec<&str> = flows.iter().map(summary).collect();
    assert_eq!(summaries, ["DNS Query a. A", "DNS Query b. A"]);
    // A record of any other kind is one event, as `decode` gives it.
    let mut single = Vec::new();
    decoder
        .decode_each(&bytes(&tcp_event(tcp_flags::SYN, true)), &mut |decoded| {
            single.push(decoded)
        })
        .unwrap();
    assert_eq!(single.len(), 1);
}
