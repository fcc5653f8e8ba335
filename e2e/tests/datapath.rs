//! L3/L4 flows on the real kernel: pods in network namespaces exchange TCP, UDP and
//! ICMP traffic and the flows the agent publishes are checked one by one. Run as root.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

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

/// Sends one datagram from `client` to `server` on `port` and waits for its flow.
/// Every packet of an exchange that finished before is then reported already: the
/// kernel wrote their records to the ring buffer before this one, and the agent
/// reads it in order. So "nothing more will come" needs no fixed sleep.
fn barrier(agent: &Agent, client: &Pod, server: &Pod, port: u16) {
    let target = SocketAddr::from((server.ipv4, port));
    client
        .netns
        .run(move || {
            let socket = UdpSocket::bind(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))).expect("bind");
            socket.send_to(b"barrier", target).expect("send");
        })
        .expect("ns");
    let ifindex = client.host_ifindex;
    let seen = agent.wait_for(
        move |f| on_interface(f, ifindex) && ports(f).is_some_and(|(_, d)| d == u32::from(port)),
        |f| !f.is_empty(),
    );
    assert!(
        !seen.is_empty(),
        "the barrier datagram to port {port} was never reported"
    );
}

/// The TCP flags a flow reports, by name.
fn tcp_flags(flow: &Flow) -> BTreeSet<&'static str> {
    let Some(layer4::Protocol::Tcp(tcp)) = flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) else {
        return BTreeSet::new();
    };
    let flags = tcp.flags.unwrap_or_default();
    [
        (flags.syn, "SYN"),
        (flags.ack, "ACK"),
        (flags.psh, "PSH"),
        (flags.fin, "FIN"),
        (flags.rst, "RST"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect()
}

fn flag_set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
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
    // Everything the exchange caused is in once the barrier is: the report
    // interval (5 s) has not passed, so nothing else may come.
    barrier(&agent, &client, &server, 7991);
    let flows: Vec<Flow> = agent.flows().into_iter().filter(tcp_flows_of(&client, 8081)).collect();
    let seen: Vec<(&str, Option<bool>)> = flows.iter().map(|f| (summary(f), is_reply(f))).collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0], ("TCP Flags: SYN", Some(false)));
    assert_eq!(seen[1], ("TCP Flags: SYN, ACK", Some(true)));
    assert!(seen[2].0.contains("FIN") && seen[2].1 == Some(false), "{seen:?}");
    assert!(seen[3].0.contains("FIN") && seen[3].1 == Some(true), "{seen:?}");
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

/// `low` reports a packet when it brings a TCP flag its flow had not shown yet: a
/// user sees the first ACK and the first data segment of each side, which
/// `medium` hides, and none of the later ACKs that `none` shows.
#[test]
fn tcp_at_low_aggregation_reports_each_packet_that_brings_a_new_flag() {
    let (node, client, server) = two_pods();
    let agent = start(&node, AggregationLevel::Low, &[&client, &server]);
    tcp_exchange(&client, &server, 8082);
    barrier(&agent, &client, &server, 7992);
    let flows: Vec<Flow> = agent.flows().into_iter().filter(tcp_flows_of(&client, 8082)).collect();
    let side = |reply: bool| -> Vec<BTreeSet<&str>> {
        flows
            .iter()
            .filter(|f| is_reply(f) == Some(reply))
            .map(tcp_flags)
            .collect()
    };
    let (request, response) = (side(false), side(true));
    assert_eq!(
        request,
        [
            flag_set(&["SYN"]),
            flag_set(&["ACK"]),
            flag_set(&["ACK", "PSH"]),
            flag_set(&["ACK", "FIN"])
        ],
        "the client's side: handshake, first ACK, data, close"
    );
    assert_eq!(
        response,
        [
            flag_set(&["SYN", "ACK"]),
            flag_set(&["ACK", "PSH"]),
            flag_set(&["ACK", "FIN"])
        ],
        "the server's side: handshake, data, close (its ACKs bring nothing new)"
    );
    assert_eq!(flows.len(), 7, "low: 7 flows for the connection where medium shows 4");
    assert_eq!(
        flows.iter().map(summary).collect::<Vec<_>>()[..2],
        ["TCP Flags: SYN", "TCP Flags: SYN, ACK"],
        "in the order the packets passed"
    );
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

/// Datagrams of one flow, about 100 ms apart, and what the agent reported of them.
struct Paced {
    reports: Vec<Flow>,
    /// From the first datagram to the last, as sent.
    span: Duration,
    /// The longest pause between two datagrams, as sent.
    longest_gap: Duration,
}

impl Paced {
    /// Re-reports the interval allows for what was actually sent: each comes at
    /// least `interval` after the previous report (plus a tick of the kernel's
    /// coarse clock), and at most `interval` plus one pause between datagrams.
    fn expected_updates(&self, interval: Duration) -> std::ops::RangeInclusive<usize> {
        let tick = Duration::from_millis(20);
        let fewest = self.span.as_secs_f64() / (interval + self.longest_gap + tick).as_secs_f64();
        let most = self.span.as_secs_f64() / interval.saturating_sub(tick).as_secs_f64();
        (fewest.floor() as usize)..=(most.floor() as usize)
    }
}

/// Sends `count` datagrams 100 ms apart and returns the client-side UDP flows reported.
fn paced_udp_reports(level: AggregationLevel, interval: Duration, count: usize) -> Paced {
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
    let sent: Vec<Instant> = client
        .netns
        .run(move || {
            let socket = UdpSocket::bind(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 7301))).expect("bind");
            (0..count)
                .map(|n| {
                    if n > 0 {
                        // The traffic's pace, not a wait for the agent.
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    let at = Instant::now();
                    socket.send_to(b"tick", target).expect("send");
                    at
                })
                .collect()
        })
        .expect("ns");
    barrier(&agent, &client, &server, 7993);
    let ifindex = client.host_ifindex;
    let reports: Vec<Flow> = agent
        .flows()
        .into_iter()
        .filter(|f| on_interface(f, ifindex) && ports(f) == Some((7301, 7300)))
        .collect();
    stop_and_check_detached(agent, &node, &[&client, &server]);
    Paced {
        reports,
        span: sent[count - 1] - sent[0],
        longest_gap: sent.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default(),
    }
}

#[test]
fn an_active_flow_is_reported_again_once_per_interval_at_medium_and_never_at_maximum() {
    // 15 datagrams over about 1.4 s with a 400 ms interval: the new flow, then about
    // 3 updates; the bounds come from the pace the datagrams really had.
    let interval = Duration::from_millis(400);
    let medium = paced_udp_reports(AggregationLevel::Medium, interval, 15);
    let updates = medium.expected_updates(interval);
    assert!(
        updates.contains(&(medium.reports.len() - 1)),
        "medium reported {} times for datagrams over {:?} (longest pause {:?}): expected the new flow and {updates:?} updates",
        medium.reports.len(),
        medium.span,
        medium.longest_gap
    );
    assert!(*updates.start() >= 1, "the datagrams spanned less than an interval");
    assert!(
        medium
            .reports
            .iter()
            .all(|f| summary(f) == "UDP" && is_reply(f) == Some(false))
    );
    let maximum = paced_udp_reports(AggregationLevel::Maximum, interval, 15);
    assert_eq!(maximum.reports.len(), 1, "maximum reports only the new flow");
}
