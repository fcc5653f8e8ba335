//! DNS, drops, lost events, XDP and interface following on the real kernel. Run as root.

mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use sightline_agent::datapath::{AggregationLevel, DatapathArgs, TcAttachMode};
use sightline_agent::event::Event;
use sightline_e2e::{DnsServer, Node, dns_server};
use sightline_proto::flow::{
    DropReason, Flow, FlowType, L7FlowType, LostEventSource, TraceObservationPoint, TrafficDirection, Verdict, layer7,
};
use support::{
    Agent, args, assert_nothing_attached, is_reply, on_interface, ports, start, stop_and_check_detached, summary,
    two_pods,
};

#[test]
fn dns_query_and_answer_become_l7_flows_with_latency() {
    let (node, client, server) = two_pods();
    let agent = start(&node, AggregationLevel::Medium, &[&client, &server]);
    let records = HashMap::from([("example.com.".to_owned(), Ipv4Addr::new(10, 0, 0, 7))]);
    let dns = DnsServer::start(&server, records).expect("dns server");
    let client_addr = SocketAddr::from((client.ipv4, 0));
    let socket = client
        .netns
        .run(move || UdpSocket::bind(client_addr))
        .expect("ns")
        .expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    socket
        .send_to(&dns_server::query(0x4242, "example.com."), dns.address)
        .expect("query");
    let mut buf = [0u8; 512];
    let (n, _) = socket.recv_from(&mut buf).expect("answer");
    assert!(n > 12);
    let ifindex = client.host_ifindex;
    let flows = agent.wait_for(
        |f| on_interface(f, ifindex) && f.r#type == FlowType::L7 as i32,
        |f| f.len() >= 2,
    );
    assert_eq!(flows.len(), 2, "{flows:#?}");
    let dns_of = |f: &Flow| match f.l7.as_ref().and_then(|l| l.record.as_ref()) {
        Some(layer7::Record::Dns(d)) => d.clone(),
        other => panic!("not DNS: {other:?}"),
    };
    let (request, response) = (&flows[0], &flows[1]);
    assert_eq!(summary(request), "DNS Query example.com. A");
    assert_eq!(request.l7.as_ref().map(|l| l.r#type), Some(L7FlowType::Request as i32));
    assert_eq!(request.event_type.as_ref().map(|e| e.r#type), Some(129));
    assert_eq!(request.traffic_direction, TrafficDirection::Egress as i32);
    assert_eq!(is_reply(request), Some(false));
    let asked = dns_of(request);
    assert_eq!(
        (asked.query.as_str(), asked.qtypes.clone()),
        ("example.com.", vec!["A".to_owned()])
    );
    assert_eq!(asked.observation_source, "ebpf");
    assert_eq!(
        summary(response),
        "DNS Answer \"10.0.0.7\" TTL: 30 (Proxy example.com. A)"
    );
    assert_eq!(
        response.l7.as_ref().map(|l| l.r#type),
        Some(L7FlowType::Response as i32)
    );
    assert_eq!(is_reply(response), Some(true));
    let answered = dns_of(response);
    assert_eq!(answered.ips, vec!["10.0.0.7"]);
    assert_eq!((answered.ttl, answered.rcode), (dns_server::TTL, 0));
    assert_eq!(answered.rrtypes, vec!["A"]);
    let latency = response.l7.as_ref().map_or(0, |l| l.latency_ns);
    assert!(latency > 0 && latency < 1_000_000_000, "latency {latency}");
    assert_eq!(ports(response).map(|p| p.0), Some(53));
    drop(dns);
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

#[test]
fn nft_drop_is_a_dropped_flow_with_reason() {
    let (node, client, server) = two_pods();
    let agent = start(&node, AggregationLevel::Medium, &[&client, &server]);
    for rule in [
        "add table inet sltest",
        "add chain inet sltest input { type filter hook input priority 0 ; }",
        "add rule inet sltest input tcp dport 9 drop",
    ] {
        server.netns.exec("nft", &[rule]).expect("nft rule");
    }
    let address = SocketAddr::from((server.ipv4, 9));
    let attempt = client
        .netns
        .run(move || TcpStream::connect_timeout(&address, Duration::from_millis(1500)))
        .expect("ns");
    assert!(attempt.is_err(), "the nft rule should drop the connection");
    let server_ip = server.ipv4.to_string();
    let flows = agent.wait_for(
        |f| f.verdict == Verdict::Dropped as i32 && f.ip.as_ref().is_some_and(|i| i.destination == server_ip),
        |f| !f.is_empty(),
    );
    let drop = flows.first().expect("a DROPPED flow");
    assert_eq!(drop.drop_reason_desc, DropReason::PolicyDenied as i32);
    assert_eq!(drop.event_type.as_ref().map(|e| e.r#type), Some(1));
    assert_eq!(ports(drop).map(|p| p.1), Some(9));
    assert!(summary(drop).starts_with("TCP Flags: SYN"), "{}", summary(drop));
    assert!(summary(drop).contains("NETFILTER_DROP"), "{}", summary(drop));
    // The SYN itself was forwarded by the node before the pod's firewall dropped it.
    let forwarded = agent.flows().into_iter().any(|f| {
        f.verdict == Verdict::Forwarded as i32
            && on_interface(&f, client.host_ifindex)
            && ports(&f).map(|p| p.1) == Some(9)
    });
    assert!(forwarded);
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

#[test]
fn interfaces_that_appear_later_are_followed_and_detached_on_exit() {
    let mut node = Node::new().expect("node");
    let first = node.add_pod().expect("pod");
    let agent = start(&node, AggregationLevel::Medium, &[&first]);
    let late = node.add_pod().expect("late pod");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while support::tcx_programs(node.netns(), &late.host_veth).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "late pod's veth never observed");
        std::thread::sleep(Duration::from_millis(50));
    }
    late.netns
        .exec("ping", &["-c", "1", "-W", "3", &first.ipv4.to_string()])
        .expect("ping");
    let ifindex = late.host_ifindex;
    let flows = agent.wait_for(
        |f| on_interface(f, ifindex) && summary(f) == "ICMPv4 EchoRequest",
        |f| !f.is_empty(),
    );
    assert_eq!(flows.len(), 1);
    assert_eq!(
        flows[0].interface.as_ref().map(|i| i.name.clone()),
        Some(late.host_veth.clone())
    );
    stop_and_check_detached(agent, &node, &[&first, &late]);
}

#[test]
fn xdp_on_an_uplink_reports_traffic_from_the_network() {
    let (node, client, server) = two_pods();
    // Only XDP, on the client's veth standing in for an uplink; no TC anywhere.
    let args = DatapathArgs {
        interfaces: vec!["no-such-interface".to_owned()],
        xdp_interfaces: vec![client.host_veth.clone()],
        ..args(AggregationLevel::Medium)
    };
    let agent = Agent::start(&node, args, &[]);
    let ifindex = client.host_ifindex;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut flows = Vec::new();
    // XDP attach completes asynchronously; ping until its first report arrives.
    while flows.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no XDP flow");
        client
            .netns
            .exec("ping", &["-c", "1", "-W", "1", &server.ipv4.to_string()])
            .expect("ping");
        flows = agent
            .flows()
            .into_iter()
            .filter(|f| on_interface(f, ifindex) && summary(f) == "ICMPv4 EchoRequest")
            .collect();
    }
    let echo = &flows[0];
    assert_eq!(echo.traffic_direction, TrafficDirection::Ingress as i32);
    assert_eq!(echo.trace_observation_point, TraceObservationPoint::FromNetwork as i32);
    assert_eq!(
        echo.ip.as_ref().map(|i| i.source.clone()),
        Some(client.ipv4.to_string())
    );
    // XDP sees only ingress: the reply leaving through this interface is not reported.
    assert!(
        agent
            .flows()
            .iter()
            .all(|f| !(on_interface(f, ifindex) && summary(f) == "ICMPv4 EchoReply"))
    );
    agent.stop();
    let link = node
        .netns()
        .ip(&["-d", "link", "show", "dev", &client.host_veth])
        .expect("ip link");
    assert!(
        !String::from_utf8_lossy(&link.stdout).contains("xdp"),
        "XDP left attached"
    );
}

#[test]
fn a_full_ring_is_reported_as_lost_events_per_cpu() {
    let (node, client, server) = two_pods();
    // One page of ring, no wakeups and no drain until shutdown: it must overflow.
    let args = DatapathArgs {
        ring_buffer_bytes: 4096,
        ring_wakeup_every: u32::MAX,
        ring_drain_interval: Duration::from_secs(3600),
        ..args(AggregationLevel::None)
    };
    let agent = Agent::start(&node, args, &[&client.host_veth, &server.host_veth]);
    let target = SocketAddr::from((server.ipv4, 7100));
    // A bound receiver that keeps reading, so the datagrams draw neither ICMP errors
    // nor receive-buffer drops (both would be reported too).
    let receiver = server
        .netns
        .run(move || UdpSocket::bind(target))
        .expect("ns")
        .expect("bind");
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _draining = std::thread::spawn(move || {
        let mut buffer = [0u8; 64];
        while receiver.recv(&mut buffer).is_ok() {}
    });
    let sent: u64 = 300;
    client
        .netns
        .run(move || {
            let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).expect("bind");
            for _ in 0..sent {
                socket.send_to(b"x", target).expect("send");
            }
        })
        .expect("ns");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !agent.events().iter().any(|e| matches!(e, Event::Lost { .. })) {
        assert!(
            std::time::Instant::now() < deadline,
            "no LostEvent after overflowing the ring"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stopping drains what the ring still holds.
    let events = agent.stop();
    let lost: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Lost { event, .. } => Some(event),
            _ => None,
        })
        .collect();
    for event in &lost {
        assert_eq!(event.source, LostEventSource::PerfEventRingBuffer as i32);
        assert!(event.num_events_lost > 0 && event.cpu.is_some());
    }
    let total_lost: u64 = lost.iter().map(|e| e.num_events_lost).sum();
    let delivered = events
        .iter()
        .filter(|e| matches!(e, Event::Flow(f) if ports(f).is_some_and(|p| p.1 == 7100)))
        .count() as u64;
    // Two reports per datagram (client and server veth): each one was either delivered
    // or counted as lost. The pods' own chatter (IPv6 neighbour and router messages)
    // adds a few reports; a double count would add hundreds: over-reporting fails too.
    const CHATTER: u64 = 64;
    assert!(delivered < 2 * sent, "nothing was lost: {delivered} delivered");
    assert!(
        (2 * sent..=2 * sent + CHATTER).contains(&(delivered + total_lost)),
        "{delivered} delivered + {total_lost} lost, for {} reports",
        2 * sent
    );
    assert_nothing_attached(node.netns(), &[&client.host_veth, &server.host_veth]);
}

#[test]
fn a_drop_storm_is_rate_limited_per_flow() {
    let (node, client, server) = two_pods();
    let agent = start(&node, AggregationLevel::Medium, &[&client, &server]);
    for rule in [
        "add table inet sltest",
        "add chain inet sltest input { type filter hook input priority 0 ; }",
        "add rule inet sltest input udp dport { 7200, 7202 } drop",
    ] {
        server.netns.exec("nft", &[rule]).expect("nft rule");
    }
    let target = SocketAddr::from((server.ipv4, 7200));
    let source = SocketAddr::from((client.ipv4, 7201));
    let barrier = SocketAddr::from((server.ipv4, 7202));
    let storm = client
        .netns
        .run(move || {
            let socket = UdpSocket::bind(source).expect("bind");
            let started = std::time::Instant::now();
            for _ in 0..200 {
                socket.send_to(b"x", target).expect("send");
            }
            let storm = started.elapsed();
            // A drop of another flow, after the storm's: once it is reported, the
            // storm's drops are too (the kernel wrote them to the ring first).
            socket.send_to(b"x", barrier).expect("send");
            storm
        })
        .expect("ns");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !agent
        .flows()
        .iter()
        .any(|f| f.verdict == Verdict::Dropped as i32 && ports(f) == Some((7201, 7202)))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the barrier's drop was never reported"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let drops: Vec<Flow> = agent
        .flows()
        .into_iter()
        .filter(|f| f.verdict == Verdict::Dropped as i32 && ports(f) == Some((7201, 7200)))
        .collect();
    // One report per started second of the 1 s per-flow interval: one report when
    // the 200 drops took less than a second, as they do unless the machine stalls.
    let allowed = 1 + storm.as_secs() as usize;
    assert!(
        (1..=allowed).contains(&drops.len()),
        "{} reports for 200 drops in {storm:?}: {drops:#?}",
        drops.len()
    );
    assert_eq!(summary(&drops[0]), "UDP (kernel drop reason: NETFILTER_DROP)");
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

#[test]
fn netlink_attach_uses_a_clsact_qdisc_and_removes_the_one_it_created() {
    let (node, client, server) = two_pods();
    let args = DatapathArgs {
        tc_attach: TcAttachMode::Netlink,
        ..args(AggregationLevel::Medium)
    };
    let agent = Agent::start(&node, args, &[]);
    let filters = |direction: &str| {
        let out = node
            .netns()
            .exec("tc", &["filter", "show", "dev", &client.host_veth, direction])
            .expect("tc filter");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !(filters("ingress").contains("sightline") && filters("egress").contains("sightline")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no clsact filters: {}",
            filters("ingress")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let qdisc = node
        .netns()
        .exec("tc", &["qdisc", "show", "dev", &client.host_veth])
        .expect("tc qdisc");
    assert!(String::from_utf8_lossy(&qdisc.stdout).contains("clsact"));
    assert!(
        support::tcx_programs(node.netns(), &client.host_veth).is_empty(),
        "TCX used despite netlink mode"
    );
    client
        .netns
        .exec("ping", &["-c", "1", "-W", "3", &server.ipv4.to_string()])
        .expect("ping");
    let ifindex = client.host_ifindex;
    let flows = agent.wait_for(
        |f| on_interface(f, ifindex) && summary(f).starts_with("ICMPv4 Echo"),
        |f| f.len() >= 2,
    );
    assert_eq!(
        flows.iter().map(summary).collect::<Vec<_>>(),
        ["ICMPv4 EchoRequest", "ICMPv4 EchoReply"]
    );
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

/// An nft rule in `pod` that drops TCP to `port`, and a connection attempt from
/// `client` that it drops. Returns the server address as text.
fn dropped_connection(client: &sightline_e2e::Pod, server: &sightline_e2e::Pod, port: u16) -> String {
    for rule in [
        "add table inet slnetns".to_owned(),
        "add chain inet slnetns input { type filter hook input priority 0 ; }".to_owned(),
        format!("add rule inet slnetns input tcp dport {port} drop"),
    ] {
        server.netns.exec("nft", &[&rule]).expect("nft rule");
    }
    let address = SocketAddr::from((server.ipv4, port));
    let attempt = client
        .netns
        .run(move || TcpStream::connect_timeout(&address, Duration::from_millis(300)))
        .expect("ns");
    assert!(attempt.is_err(), "the nft rule should drop the connection");
    server.ipv4.to_string()
}

fn dropped_to(flow: &Flow, ip: &str) -> bool {
    flow.verdict == Verdict::Dropped as i32 && flow.ip.as_ref().is_some_and(|i| i.destination == ip)
}

#[test]
fn agents_sharing_a_kernel_each_report_only_their_own_nodes_drops() {
    let (node_a, client_a, server_a) = two_pods();
    let (node_b, client_b, server_b) = two_pods();
    // Every drop the kernel makes, so that only the namespace decides.
    let every_drop = DatapathArgs {
        drop_events: sightline_agent::datapath::DropEvents::All,
        ..args(AggregationLevel::Medium)
    };
    let veths = |pods: [&sightline_e2e::Pod; 2]| pods.map(|p| p.host_veth.clone());
    let [a1, a2] = veths([&client_a, &server_a]);
    let [b1, b2] = veths([&client_b, &server_b]);
    let agent_a = Agent::start(&node_a, every_drop.clone(), &[&a1, &a2]);
    let agent_b = Agent::start(&node_b, every_drop, &[&b1, &b2]);

    let in_b = dropped_connection(&client_b, &server_b, 9);
    let seen_by_b = agent_b.wait_for(|f| dropped_to(f, &in_b), |f| !f.is_empty());
    assert!(seen_by_b.iter().all(|f| f.node_name == "test-node"), "{seen_by_b:#?}");
    // A drop on node A after the one on node B: once agent A has read it, it has
    // read past the point where B's drop would have been in the shared ring.
    let in_a = dropped_connection(&client_a, &server_a, 9);
    agent_a.wait_for(|f| dropped_to(f, &in_a), |f| !f.is_empty());
    let leaked: Vec<Flow> = agent_a.flows().into_iter().filter(|f| dropped_to(f, &in_b)).collect();
    assert!(leaked.is_empty(), "node A reported node B's drop: {leaked:#?}");
    let leaked: Vec<Flow> = agent_b.flows().into_iter().filter(|f| dropped_to(f, &in_a)).collect();
    assert!(leaked.is_empty(), "node B reported node A's drop: {leaked:#?}");
    stop_and_check_detached(agent_a, &node_a, &[&client_a, &server_a]);
    stop_and_check_detached(agent_b, &node_b, &[&client_b, &server_b]);
}

fn debug_messages(agent: &Agent) -> Vec<(String, Option<u32>)> {
    agent
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Event::Debug { event, .. } => Some((event.message, event.arg1.map(|a| a.value))),
            _ => None,
        })
        .collect()
}

#[test]
fn debug_events_tell_attaches_and_detaches_when_asked_for() {
    let mut node = Node::new().expect("node");
    let first = node.add_pod().expect("pod");
    let with_debug = DatapathArgs {
        debug_events: true,
        ..args(AggregationLevel::Medium)
    };
    let agent = Agent::start(&node, with_debug, &[&first.host_veth]);
    let late = node.add_pod().expect("late pod");
    let (late_veth, late_ifindex) = (late.host_veth.clone(), late.host_ifindex);
    let attached = format!("TC programs attached to {late_veth} (Endpoint)");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !debug_messages(&agent).contains(&(attached.clone(), Some(late_ifindex))) {
        assert!(std::time::Instant::now() < deadline, "{:#?}", debug_messages(&agent));
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(late);
    let gone = format!("interface {late_veth} gone: programs detached");
    while !debug_messages(&agent).contains(&(gone.clone(), Some(late_ifindex))) {
        assert!(std::time::Instant::now() < deadline, "{:#?}", debug_messages(&agent));
        std::thread::sleep(Duration::from_millis(20));
    }
    let first_attached = format!("TC programs attached to {} (Endpoint)", first.host_veth);
    assert!(debug_messages(&agent).iter().any(|(m, _)| *m == first_attached));
    stop_and_check_detached(agent, &node, &[&first]);

    // Off by default: the same life of an interface says nothing.
    let quiet = start(&node, AggregationLevel::Medium, &[&first]);
    let other = node.add_pod().expect("another pod");
    support::wait_attached(node.netns(), &[&other.host_veth]);
    assert!(debug_messages(&quiet).is_empty(), "{:#?}", debug_messages(&quiet));
    stop_and_check_detached(quiet, &node, &[&first, &other]);
}

#[test]
fn every_dns_message_of_a_tcp_segment_becomes_a_request_flow() {
    let (node, client, server) = two_pods();
    let agent = start(&node, AggregationLevel::Medium, &[&client, &server]);
    let address = SocketAddr::from((server.ipv4, 53));
    let listener = server
        .netns
        .run(move || std::net::TcpListener::bind(address))
        .expect("ns")
        .expect("bind :53");
    let accepting = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut sink = [0u8; 512];
        let _ = std::io::Read::read(&mut stream, &mut sink);
    });
    // Two queries in one write: one segment, two length-prefixed messages.
    let mut segment = Vec::new();
    for (id, name) in [(0x0101, "one.example."), (0x0202, "two.example.")] {
        let query = sightline_e2e::dns_server::query(id, name);
        segment.extend((query.len() as u16).to_be_bytes());
        segment.extend(query);
    }
    client
        .netns
        .run(move || {
            let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3)).expect("connect");
            std::io::Write::write_all(&mut stream, &segment).expect("write");
        })
        .expect("ns");
    accepting.join().expect("server thread");
    let ifindex = client.host_ifindex;
    let requests = agent.wait_for(
        |f| on_interface(f, ifindex) && f.r#type == FlowType::L7 as i32,
        |f| f.len() >= 2,
    );
    let summaries: Vec<&str> = requests.iter().map(summary).collect();
    assert_eq!(
        summaries,
        ["DNS Query one.example. A", "DNS Query two.example. A"],
        "{requests:#?}"
    );
    stop_and_check_detached(agent, &node, &[&client, &server]);
}
