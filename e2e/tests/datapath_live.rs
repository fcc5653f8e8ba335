//! The datapath follows new settings while it runs (the live configuration): the
//! aggregation level changes at the next packet and a new interface pattern
//! attaches to links that were already there. Run as root.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use sightline_agent::datapath::{AggregationLevel, LiveDatapath};
use sightline_e2e::Pod;
use sightline_proto::flow::Flow;
use support::{Agent, args, on_interface, ports, stop_and_check_detached, tcx_programs, two_pods, wait_attached};

/// A UDP socket in `client`'s namespace connected to `server`: one 5-tuple, however
/// often it sends. A socket keeps its namespace, so the test thread can use it.
fn udp_pair(client: &Pod, server: &Pod) -> (UdpSocket, UdpSocket) {
    let target = SocketAddr::from((server.ipv4, 7400));
    let receiver = server
        .netns
        .run(move || UdpSocket::bind(target))
        .expect("ns")
        .expect("bind");
    let sender = client
        .netns
        .run(move || {
            let socket = UdpSocket::bind(SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 7401)))?;
            socket.connect(target)?;
            Ok::<_, std::io::Error>(socket)
        })
        .expect("ns")
        .expect("client socket");
    (sender, receiver)
}

fn send_udp(socket: &UdpSocket, count: usize) {
    for _ in 0..count {
        socket.send(b"tick").expect("send");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn udp_reports(agent: &Agent, client: &Pod) -> Vec<Flow> {
    let ifindex = client.host_ifindex;
    agent
        .flows()
        .into_iter()
        .filter(|f| on_interface(f, ifindex) && ports(f) == Some((7401, 7400)))
        .collect()
}

fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_new_aggregation_level_applies_to_a_flow_already_known() {
    let (node, client, server) = two_pods();
    let start = args(AggregationLevel::Maximum);
    let (settings, live) = tokio::sync::watch::channel(start.live());
    let agent = Agent::start_live(&node, start.clone(), &[&client.host_veth, &server.host_veth], live);
    let (socket, _receiver) = udp_pair(&client, &server);

    send_udp(&socket, 10);
    wait_until("the new flow is reported", || !udp_reports(&agent, &client).is_empty());
    assert_eq!(udp_reports(&agent, &client).len(), 1, "maximum: only the new flow");

    settings.send_replace(LiveDatapath {
        monitor_aggregation: AggregationLevel::None,
        ..start.live()
    });
    // The change is asynchronous to this thread; the first datagram after it is
    // reported once the datapath has written the setting, so keep sending until
    // reports flow, then count a fresh batch exactly.
    wait_until("reports at level none", || {
        send_udp(&socket, 1);
        udp_reports(&agent, &client).len() > 2
    });
    let before = udp_reports(&agent, &client).len();
    send_udp(&socket, 10);
    wait_until("every datagram is reported", || {
        udp_reports(&agent, &client).len() >= before + 10
    });
    stop_and_check_detached(agent, &node, &[&client, &server]);
}

#[test]
fn a_new_interface_pattern_attaches_and_detaches_existing_links() {
    let (node, client, server) = two_pods();
    let start = sightline_agent::datapath::DatapathArgs {
        interfaces: vec![client.host_veth.clone()],
        ..args(AggregationLevel::Medium)
    };
    let (settings, live) = tokio::sync::watch::channel(start.live());
    let agent = Agent::start_live(&node, start.clone(), &[&client.host_veth], live);
    assert!(
        tcx_programs(node.netns(), &server.host_veth).is_empty(),
        "server veth not selected yet"
    );

    settings.send_replace(LiveDatapath {
        interfaces: vec![server.host_veth.clone()],
        ..start.live()
    });
    wait_attached(node.netns(), &[&server.host_veth]);
    wait_until("the client veth is released", || {
        tcx_programs(node.netns(), &client.host_veth).is_empty()
    });
    stop_and_check_detached(agent, &node, &[&client, &server]);
}
