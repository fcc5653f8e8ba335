//! L3/L4 flows on the real kernel: pods in network namespaces exchange TCP, UDP and
//! ICMP traffic and the flows the agent publishes are checked one by one. Run as root.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use sightline_agent::datapath::{AggregationLevel, DatapathArgs};
use sightline_e2e::Pod;
use sightline_proto::flow::{Flow, FlowType, IpVersion, TraceObservationPoint, TrafficDirection, Verdict, layer4};
use support::{Agent, args, is_reply, on_interface, ports, start, stop_and_check_detached, summary, two_pods};

/// A TCP exchange: the client sends "hello", half-closes, reads "bye" and closes.
fn tcp_exchange(client: &Pod, server: &Pod, port: u16) {
    let address = SocketAddr::from((server.ipv4, port));
    let listener = server
        .netns
        .run(move || TcpListener::bind(address))
        .expect("ns")
        .expect("bind");
    let accept = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        stream.read_to_end(&mut got).expect("server read");
        stream.write_all(b"bye").expect("server write");
        got
    });
    client
        .netns
        .run(move || {
            let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3)).expect("connect");
            stream.write_all(b"hello").expect("client write");
            stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).expect("client read");
            assert_eq!(reply, b"bye");
        })
        .expect("client ns");
    assert_eq!(accept.join().expect("server thread"), b"hello");
}

fn tcp_flows_of(pod: &Pod, port: u16) -> impl Fn(&Flow) -> bool + use<> {
    let ifindex = pod.host_ifindex;
    move |f: &Flow| {
        on_interface(f, ifindex)
            && matches!(
                f.l4.as_ref().and_then(|l| l.protocol.as_ref()),
                Some(layer4::Protocol::Tcp(_))
            )
            && ports(f).is_some_and(|(s, d)| s == port as u32 || d == port as u32)
    }
}

#[test]
fn tcp_every_packet_shows_handshake_data_and_close_with_directions() {
    let (node, client, server) = two_pods();
    let agent = start(&node, AggregationLevel::None, &[&client, &server]);
    tcp_exchange(&client, &server, 8080);
    let flows = agent.wait_for(tcp_flows_of(&client, 8080), |f| {
        f.iter().filter(|f| summary(f).contains("FIN")).count() >= 2
            && f.last().is_some_and(|l| summary(l) == "TCP Flags: ACK")
    });
    let seen: Vec<(&str, Option<bool>)> = flows.iter().map(|f| (summary(f), is_reply(f))).collect();
    assert!(seen.len() >= 7, "{seen:?}");
    assert_eq!(
        seen[..3],
        [
            ("TCP Flags: SYN", Some(false)),
            ("TCP Flags: SYN, ACK", Some(true)),
            ("TCP Flags: ACK", Some(false))
        ],
        "{seen:?}"
    );
    let syn = &flows[0];
    assert_eq!(syn.verdict, Verdict::Forwarded as i32);
    assert_eq!(syn.r#type, FlowType::L3L4 as i32);
    assert_eq!(syn.traffic_direction, TrafficDirection::Egress as i32);
    assert_eq!(syn.trace_observation_point, TraceObservationPoint::FromEndpoint as i32);
    assert_eq!(syn.event_type.as_ref().map(|e| e.r#type), Some(4));
    let ip = syn.ip.as_ref().expect("ip");
    assert_eq!(
        (ip.source.as_str(), ip.destination.as_str()),
        (client.ipv4.to_string().as_str(), server.ipv4.to_string().as_str())
    );
    assert_eq!(ip.ip_version, IpVersion::IPv4 as i32);
    assert_eq!(ports(syn).map(|p| p.1), Some(8080));
    assert_eq!(syn.node_name, "test-node");
    assert_eq!(
        syn.interface.as_ref().map(|i| i.name.as_str()),
        Some(client.host_veth.as_str())
    );
    let client_mac = client.netns.exec("cat", &["/sys/class/net/eth0/address"]).expect("MAC");
    assert_eq!(
        syn.ethernet.as_ref().map(|e| e.source.as_str()),
        Some(String::from_utf8_lossy(&client_mac.stdout).trim()),
        "the source MAC is the client pod's"
    );
    assert_eq!(syn.uuid.len(), 36);
    let synack = &flows[1];
    assert_eq!(synack.traffic_direction, TrafficDirection::Ingress as i32);
    assert_eq!(synack.trace_observation_point, TraceObservationPoint::ToEndpoint as i32);
    assert_eq!(ports(synack), ports(syn).map(|(s, d)| (d, s)));
    assert!(
        seen.contains(&("TCP Flags: ACK, PSH", Some(false))),
        "client data missing: {seen:?}"
    );
    assert!(
        seen.contains(&("TCP Flags: ACK, PSH", Some(true))),
        "server data missing: {seen:?}"
    );
    let fins: Vec<_> = seen.iter().filter(|(s, _)| s.contains("FIN")).collect();
    assert_eq!(
        fins.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
        [Some(false), Some(true)],
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&("TCP Flags: ACK", Some(false))));
    // The server's veth saw the same connection from the other side.
    let server_side: Vec<_> = agent.flows().into_iter().filter(tcp_flows_of(&server, 8080)).collect();
    assert_eq!(server_side.first().map(summary), Some("TCP Flags: SYN"));
    assert_eq!(server_side[0].traffic_direction, TrafficDirection::Ingress as i32);
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

#[test]
fn tcp_at_medium_aggregation_reports_only_new_flows_and_syn_fin() {
    let (node, client, server) = two_pods();
    let agent = start(&node, AggregationLevel::Medium, &[&client, &server]);
    tcp_exchange(&client, &server, 8081);
    let select = tcp_flows_of(&client, 8081);
    let flows = agent.wait_for(&select, |f| {
        f.iter().filter(|f| summary(f).contains("FIN")).count() >= 2
    });
    // Nothing else may trickle in: the report interval (5 s) has not passed.
    std::thread::sleep(Duration::from_millis(500));
    let flows_after: Vec<Flow> = agent.flows().into_iter().filter(|f| select(f)).collect();
    assert_eq!(flows.len(), flows_after.len(), "late reports at medium level");
    let seen: Vec<(&str, Option<bool>)> = flows.iter().map(|f| (summary(f), is_reply(f))).collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0], ("TCP Flags: SYN", Some(false)));
    assert_eq!(seen[1], ("TCP Flags: SYN, ACK", Some(true)));
    assert!(seen[2].0.contains("FIN") && seen[2].1 == Some(false), "{seen:?}");
    assert!(seen[3].0.contains("FIN") && seen[3].1 == Some(true), "{seen:?}");
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

#[test]
fn udp_both_ways_is_request_then_reply() {
    let (node, client, server) = two_pods();
    let agent = start(&node, AggregationLevel::None, &[&client, &server]);
    let server_addr = SocketAddr::from((server.ipv4, 7000));
    let server_socket = server
        .netns
        .run(move || UdpSocket::bind(server_addr))
        .expect("ns")
        .expect("bind");
    let client_addr = SocketAddr::from((client.ipv4, 7001));
    let client_socket = client
        .netns
        .run(move || UdpSocket::bind(client_addr))
        .expect("ns")
        .expect("bind");
    client_socket.send_to(b"ping", server_addr).expect("send");
    let mut buf = [0u8; 16];
    let (n, from) = server_socket.recv_from(&mut buf).expect("server recv");
    server_socket.send_to(&buf[..n], from).expect("reply");
    client_socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    client_socket.recv_from(&mut buf).expect("client recv");
    let ifindex = client.host_ifindex;
    let flows = agent.wait_for(
        |f| on_interface(f, ifindex) && ports(f).is_some_and(|p| p == (7001, 7000) || p == (7000, 7001)),
        |f| f.len() >= 2,
    );
    let seen: Vec<_> = flows
        .iter()
        .map(|f| (summary(f), ports(f), is_reply(f), f.traffic_direction))
        .collect();
    assert_eq!(
        seen,
        [
            ("UDP", Some((7001, 7000)), Some(false), TrafficDirection::Egress as i32),
            ("UDP", Some((7000, 7001)), Some(true), TrafficDirection::Ingress as i32),
        ]
    );
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

#[test]
fn ping_v4_and_v6_are_echo_request_and_reply() {
    let (node, client, server) = two_pods();
    let agent = start(&node, AggregationLevel::Medium, &[&client, &server]);
    client
        .netns
        .exec("ping", &["-c", "1", "-W", "3", &server.ipv4.to_string()])
        .expect("ping v4");
    client
        .netns
        .exec("ping", &["-6", "-c", "1", "-W", "3", &server.ipv6.to_string()])
        .expect("ping v6");
    let ifindex = client.host_ifindex;
    let echo = |f: &Flow| on_interface(f, ifindex) && summary(f).contains("Echo");
    let flows = agent.wait_for(echo, |f| f.len() >= 4);
    let seen: Vec<_> = flows
        .iter()
        .map(|f| {
            (
                summary(f),
                is_reply(f),
                f.ip.as_ref().map(|i| i.ip_version),
                f.ip.as_ref().map(|i| i.source.clone()),
            )
        })
        .collect();
    let (c4, s4, c6, s6) = (
        client.ipv4.to_string(),
        server.ipv4.to_string(),
        client.ipv6.to_string(),
        server.ipv6.to_string(),
    );
    assert_eq!(
        seen,
        [
            (
                "ICMPv4 EchoRequest",
                Some(false),
                Some(IpVersion::IPv4 as i32),
                Some(c4)
            ),
            ("ICMPv4 EchoReply", Some(true), Some(IpVersion::IPv4 as i32), Some(s4)),
            (
                "ICMPv6 EchoRequest",
                Some(false),
                Some(IpVersion::IPv6 as i32),
                Some(c6)
            ),
            ("ICMPv6 EchoReply", Some(true), Some(IpVersion::IPv6 as i32), Some(s6)),
        ]
    );
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

/// Sends `count` datagrams 100 ms apart and returns the client-side UDP flows reported.
fn paced_udp_reports(level: AggregationLevel, interval: Duration, count: usize) -> Vec<Flow> {
    let (node, client, server) = two_pods();
    let args = DatapathArgs {
        monitor_aggregation_interval: interval,
        ..args(level)
    };
    let agent = Agent::start(&node, args, &[&client.host_veth, &server.host_veth]);
    let target = SocketAddr::from((server.ipv4, 7300));
    let _receiver = server
        .netns
        .run(move || UdpSocket::bind(target))
        .expect("ns")
        .expect("bind");
    client
        .netns
        .run(move || {
            let socket = UdpSocket::bind(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 7301))).expect("bind");
            for _ in 0..count {
                socket.send_to(b"tick", target).expect("send");
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .expect("ns");
    std::thread::sleep(Duration::from_millis(100));
    let ifindex = client.host_ifindex;
    let flows: Vec<Flow> = agent
        .flows()
        .into_iter()
        .filter(|f| on_interface(f, ifindex) && ports(f) == Some((7301, 7300)))
        .collect();
    stop_and_check_detached(agent, &node, &[&client, &server]);
    flows
}

#[test]
fn an_active_flow_is_reported_again_once_per_interval_at_medium_and_never_at_maximum() {
    // 15 datagrams over 1.5 s with a 400 ms interval: the new flow, then about 3 updates.
    let medium = paced_udp_reports(AggregationLevel::Medium, Duration::from_millis(400), 15);
    assert!(
        (3..=5).contains(&medium.len()),
        "medium reported {} times",
        medium.len()
    );
    assert!(medium.iter().all(|f| summary(f) == "UDP" && is_reply(f) == Some(false)));
    let maximum = paced_udp_reports(AggregationLevel::Maximum, Duration::from_millis(400), 15);
    assert_eq!(maximum.len(), 1, "maximum reports only the new flow");
}
