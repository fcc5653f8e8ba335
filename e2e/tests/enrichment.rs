//! Enrichment end to end: real pods in network namespaces, the datapath, and
//! `--manifests` describing those pods; flows must name pods, namespaces and
//! workloads. Run as root.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_agent::enrich::IndexConfig;
use sightline_agent::k8s;
use sightline_e2e::{Node, Pod};
use sightline_proto::flow::{AgentEventType, Flow, Workload};
use support::on_interface;
use support::services::{EnrichedAgent, NODE_NAME};

fn from_client(flow: &Flow, ifindex: u32, client_ip: &str) -> bool {
    on_interface(flow, ifindex) && flow.ip.as_ref().is_some_and(|ip| ip.source == client_ip)
}

fn pod_yaml(name: &str, pod: &Pod, labels: &str, owner_kind: &str, owner: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: shop
  uid: uid-{name}
  labels: {{{labels}}}
  ownerReferences: [{{apiVersion: apps/v1, kind: {owner_kind}, name: {owner}, uid: o-{owner}, controller: true}}]
spec:
  nodeName: {NODE_NAME}
  containers: [{{name: main, image: example}}]
status:
  phase: Running
  podIP: \"{}\"
  podIPs: [{{ip: \"{}\"}}, {{ip: \"{}\"}}]
---
",
        pod.ipv4, pod.ipv4, pod.ipv6
    )
}

fn manifests(client: &Pod, server: &Pod) -> String {
    let workloads = "apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web-5d9c
  namespace: shop
  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d1, controller: true}]
spec:
  selector: {matchLabels: {app: web}}
";
    let pods = format!(
        "{}{}",
        pod_yaml(
            "web-5d9c-x7k2p",
            client,
            "app: web, pod-template-hash: 5d9c",
            "ReplicaSet",
            "web-5d9c"
        ),
        pod_yaml(
            "db-0",
            server,
            "app: db, controller-revision-hash: db-6f",
            "StatefulSet",
            "db"
        ),
    );
    format!("{workloads}---\n{pods}")
}

#[test]
fn flows_between_harness_pods_carry_pod_names_namespaces_and_workloads() {
    let mut node = Node::new().expect("node");
    let client = node.add_pod().expect("client pod");
    let server = node.add_pod().expect("server pod");
    let mut agent = EnrichedAgent::start(&node, &manifests(&client, &server), &[&client, &server]);

    let target = SocketAddr::from((server.ipv4, 9999));
    let receiver = server
        .netns
        .run(move || UdpSocket::bind(target))
        .expect("ns")
        .expect("bind");
    client
        .netns
        .run(move || {
            let socket = UdpSocket::bind("0.0.0.0:0").expect("bind");
            socket.send_to(b"hello", target).expect("send");
        })
        .expect("client ns");
    let mut buf = [0u8; 16];
    receiver
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    assert_eq!(receiver.recv(&mut buf).expect("received"), 5);

    let ifindex = client.host_ifindex;
    let client_ip = client.ipv4.to_string();
    let flows = agent.wait_for(|flows| flows.iter().any(|f| from_client(f, ifindex, &client_ip)));
    let flow = flows
        .into_iter()
        .find(|f| from_client(f, ifindex, &client_ip))
        .expect("no flow from the client");
    agent.halt();
    let agent_events = agent.agent_event_types();

    let source = flow.source.expect("source endpoint");
    let destination = flow.destination.expect("destination endpoint");
    assert_eq!(
        (source.namespace.as_str(), source.pod_name.as_str()),
        ("shop", "web-5d9c-x7k2p")
    );
    assert_eq!(
        source.workloads,
        vec![Workload {
            name: "web".into(),
            kind: "Deployment".into()
        }]
    );
    assert!(
        source.labels.contains(&"k8s:app=web".to_string()),
        "{:?}",
        source.labels
    );
    assert!(
        source
            .labels
            .contains(&"k8s:io.kubernetes.pod.namespace=shop".to_string())
    );
    assert!(source.identity >= 256);
    assert_eq!(
        (destination.namespace.as_str(), destination.pod_name.as_str()),
        ("shop", "db-0")
    );
    assert_eq!(
        destination.workloads,
        vec![Workload {
            name: "db".into(),
            kind: "StatefulSet".into()
        }]
    );
    assert_ne!(source.identity, destination.identity);

    assert!(
        agent_events.contains(&(AgentEventType::AgentStarted as i32)),
        "{agent_events:?}"
    );
    let created = agent_events
        .iter()
        .filter(|t| **t == AgentEventType::EndpointCreated as i32)
        .count();
    assert_eq!(created, 2, "{agent_events:?}");
}

#[test]
fn addresses_added_to_the_nodes_interfaces_become_the_host() {
    let node = Node::new().expect("node");
    let index = Arc::new(sightline_agent::enrich::Index::new(IndexConfig {
        cluster: "default".into(),
        local_node: NODE_NAME.into(),
        agent_port: 4244,
    }));
    let followed = index.clone();
    let _follower = node
        .netns()
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(k8s::local_addresses::follow(followed))
                .map_err(|e| e.to_string())
        })
        .expect("follower thread");
    let identity_of = |ip: &str| index.endpoint(ip.parse().expect("ip")).map(|e| e.identity);
    let wait_until = |ip: &str, want: Option<u32>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while identity_of(ip) != want {
            assert!(Instant::now() < deadline, "{ip}: {:?}, want {want:?}", identity_of(ip));
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Loopback gets 127.0.0.1 when it comes up.
    node.netns().ip(&["link", "set", "lo", "up"]).expect("lo up");
    wait_until("127.0.0.1", Some(1));
    node.netns()
        .ip(&["addr", "add", "10.250.7.1/24", "dev", "br0"])
        .expect("add address");
    wait_until("10.250.7.1", Some(1));
    node.netns()
        .ip(&["addr", "del", "10.250.7.1/24", "dev", "br0"])
        .expect("remove address");
    wait_until("10.250.7.1", None);
}
