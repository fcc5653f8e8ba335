//! Kubernetes Services on a simulated node: manifests for pods and Services, a
//! kube-proxy-style nftables DNAT in the node's namespace, a client outside the
//! node, and an agent with enrichment from those manifests collecting its flows.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_agent::datapath::{self, DatapathArgs};
use sightline_agent::enrich::IndexConfig;
use sightline_agent::event::{Event, EventSink};
use sightline_agent::k8s::{self, K8sArgs};
use sightline_e2e::{Netns, Node, Pod};
use sightline_proto::flow::{Endpoint, Flow, Service, layer4};

use super::wait_attached;

pub const NODE_NAME: &str = "test-node";

pub fn pod_yaml(name: &str, namespace: &str, pod: &Pod, labels: &str) -> String {
    pod_yaml_on(NODE_NAME, name, namespace, pod, labels)
}

/// A pod scheduled to `node_name`, with both its addresses (the harness gives every
/// pod an IPv4 and an IPv6 address).
pub fn pod_yaml_on(node_name: &str, name: &str, namespace: &str, pod: &Pod, labels: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}, uid: uid-{name}, labels: {{{labels}}}}}
spec: {{nodeName: {node_name}, containers: [{{name: main, image: example}}]}}
status: {{phase: Running, podIP: \"{ip}\", podIPs: [{{ip: \"{ip}\"}}, {{ip: \"{ipv6}\"}}]}}
---
",
        ip = pod.ipv4,
        ipv6 = pod.ipv6
    )
}

/// A Node object with one InternalIP.
pub fn node_yaml(name: &str, internal_ip: impl Into<IpAddr>) -> String {
    let internal_ip = internal_ip.into();
    format!(
        "apiVersion: v1
kind: Node
metadata: {{name: {name}}}
status: {{addresses: [{{type: InternalIP, address: \"{internal_ip}\"}}]}}
---
"
    )
}

/// A Service in front of one backend pod, with its EndpointSlice.
pub struct ServiceSpec<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub cluster_ip: Ipv4Addr,
    /// Makes it a dual-stack Service with this IPv6 ClusterIP beside `cluster_ip`.
    pub cluster_ipv6: Option<Ipv6Addr>,
    pub external_ips: &'a [Ipv4Addr],
    pub port: u16,
    pub target: u16,
    pub protocol: &'a str,
    /// Makes it a NodePort Service open on this port of every node address.
    pub node_port: Option<u16>,
    pub backend: &'a Pod,
}

/// The Service and one EndpointSlice per address family it serves (as the
/// EndpointSlice controller writes them).
pub fn service_yaml(service: &ServiceSpec<'_>) -> String {
    let ServiceSpec {
        name,
        namespace,
        cluster_ip,
        port,
        target,
        protocol,
        ..
    } = service;
    let external: Vec<String> = service.external_ips.iter().map(|ip| format!("\"{ip}\"")).collect();
    let (kind, node_port) = match service.node_port {
        Some(node_port) => ("NodePort", format!(", nodePort: {node_port}")),
        None => ("ClusterIP", String::new()),
    };
    let (cluster_ips, families) = match service.cluster_ipv6 {
        Some(ipv6) => (
            format!("\"{cluster_ip}\", \"{ipv6}\""),
            "ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6], ",
        ),
        None => (format!("\"{cluster_ip}\""), ""),
    };
    let mut slices = vec![("IPv4", IpAddr::V4(service.backend.ipv4))];
    if service.cluster_ipv6.is_some() {
        slices.push(("IPv6", IpAddr::V6(service.backend.ipv6)));
    }
    let slices: String = slices
        .into_iter()
        .enumerate()
        .map(|(n, (family, ip))| {
            format!(
                "apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-{n}, namespace: {namespace}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: {family}
endpoints: [{{addresses: [\"{ip}\"]}}]
ports: [{{port: {target}, protocol: {protocol}}}]
---
"
            )
        })
        .collect();
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}, uid: uid-svc-{name}}}
spec: {{type: {kind}, {families}clusterIP: \"{cluster_ip}\", clusterIPs: [{cluster_ips}], externalIPs: [{external}], ports: [{{port: {port}, targetPort: {target}, protocol: {protocol}{node_port}}}]}}
---
{slices}",
        external = external.join(", "),
    )
}

/// The address of the node on its pods' bridge: their default gateway, and what
/// kube-proxy's masquerade rewrites translated connections to.
pub fn gateway(pod: &Pod) -> Ipv4Addr {
    let [a, b, c, _] = pod.ipv4.octets();
    Ipv4Addr::new(a, b, c, 1)
}

/// The node's IPv6 address on its pods' bridge: their IPv6 gateway (see [`gateway`]).
pub fn gateway_ipv6(pod: &Pod) -> Ipv6Addr {
    let mut segments = pod.ipv6.segments();
    segments[7] = 1;
    Ipv6Addr::from(segments)
}

/// The address family a test's traffic uses: every pod has an address of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(self, pod: &Pod) -> IpAddr {
        match self {
            Family::V4 => pod.ipv4.into(),
            Family::V6 => pod.ipv6.into(),
        }
    }

    /// The node's address on `pod`'s bridge.
    pub fn gateway(self, pod: &Pod) -> IpAddr {
        match self {
            Family::V4 => gateway(pod).into(),
            Family::V6 => gateway_ipv6(pod).into(),
        }
    }
}

/// Routes pods' IPv6 through the node as [`route_pods`] does their IPv4: a gateway
/// on the bridge, IPv6 forwarding on.
pub fn route_pods_ipv6(node: &Node, pods: &[&Pod]) {
    let gateway = gateway_ipv6(pods[0]);
    let netns = node.netns();
    netns
        .ip(&["-6", "addr", "add", &format!("{gateway}/64"), "dev", "br0", "nodad"])
        .expect("IPv6 gateway address");
    let forwarding = netns
        .exec("sysctl", &["-w", "net.ipv6.conf.all.forwarding=1"])
        .expect("sysctl");
    assert!(forwarding.status.success(), "{forwarding:?}");
    for pod in pods {
        pod.netns
            .ip(&["-6", "route", "add", "default", "via", &gateway.to_string()])
            .expect("IPv6 default route");
    }
}

/// Routes pods through the node (a gateway on the bridge, forwarding on) and
/// installs `rules` (an nftables ruleset) in the node's namespace.
pub fn route_through_node(node: &Node, pods: &[&Pod], rules: &str) {
    route_pods(node, pods);
    install_rules(node, rules);
}

/// Routes pods through the node: a gateway on the bridge, forwarding on.
pub fn route_pods(node: &Node, pods: &[&Pod]) {
    let gateway = gateway(pods[0]);
    let netns = node.netns();
    netns
        .ip(&["addr", "add", &format!("{gateway}/24"), "dev", "br0"])
        .expect("gateway address");
    let forwarding = netns.exec("sysctl", &["-w", "net.ipv4.ip_forward=1"]).expect("sysctl");
    assert!(forwarding.status.success(), "{forwarding:?}");
    for pod in pods {
        pod.netns
            .ip(&["route", "add", "default", "via", &gateway.to_string()])
            .expect("default route");
    }
}

/// Installs `rules` (an nftables ruleset) in the node's namespace.
pub fn install_rules(node: &Node, rules: &str) {
    let netns = node.netns();
    let file = tempfile::NamedTempFile::new().expect("rules file");
    std::fs::write(file.path(), rules).expect("write rules");
    let path = file.path().to_str().expect("utf-8 path");
    let nft = netns.exec("nft", &["-f", path]).expect("nft");
    assert!(nft.status.success(), "nft -f: {}", String::from_utf8_lossy(&nft.stderr));
}

/// A machine outside the cluster, one link away from the node: its own namespace,
/// a veth into the node's namespace, and a default route through the node.
pub struct RemoteHost {
    pub netns: Netns,
    pub ipv4: Ipv4Addr,
    /// The node's address on the link.
    pub node_ipv4: Ipv4Addr,
    /// The node's end of the link, in the node's namespace.
    node_end: String,
}

/// The IPv6 addresses of a [`RemoteHost`]'s link (documentation prefix 2001:db8::/64).
pub struct RemoteIpv6 {
    pub remote: Ipv6Addr,
    /// The node's address on the link.
    pub node: Ipv6Addr,
}

impl RemoteHost {
    /// Documentation addresses (TEST-NET-2): every node has its own namespace, so
    /// concurrent tests never meet.
    pub fn attach(node: &Node) -> RemoteHost {
        let netns = Netns::new("slr").expect("remote namespace");
        let node_end = sightline_e2e::netns::unique_name("slx");
        let (ipv4, node_ipv4) = (Ipv4Addr::new(198, 51, 100, 2), Ipv4Addr::new(198, 51, 100, 1));
        node.netns()
            .ip(&[
                "link",
                "add",
                &node_end,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                netns.name(),
            ])
            .expect("remote veth");
        node.netns()
            .ip(&["addr", "add", &format!("{node_ipv4}/24"), "dev", &node_end])
            .expect("node address");
        node.netns().ip(&["link", "set", &node_end, "up"]).expect("node end up");
        netns
            .ip(&["addr", "add", &format!("{ipv4}/24"), "dev", "eth0"])
            .expect("remote address");
        netns.ip(&["link", "set", "eth0", "up"]).expect("remote up");
        netns
            .ip(&["route", "add", "default", "via", &node_ipv4.to_string()])
            .expect("remote route");
        RemoteHost {
            netns,
            ipv4,
            node_ipv4,
            node_end,
        }
    }

    /// Adds IPv6 to the link, with the remote's default IPv6 route through the node
    /// (whose IPv6 forwarding [`route_pods_ipv6`] turns on).
    pub fn enable_ipv6(&self, node: &Node) -> RemoteIpv6 {
        let (remote, node_address) = (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        );
        node.netns()
            .ip(&[
                "-6",
                "addr",
                "add",
                &format!("{node_address}/64"),
                "dev",
                &self.node_end,
                "nodad",
            ])
            .expect("node IPv6 address");
        self.netns
            .ip(&["-6", "addr", "add", &format!("{remote}/64"), "dev", "eth0", "nodad"])
            .expect("remote IPv6 address");
        self.netns
            .ip(&["-6", "route", "add", "default", "via", &node_address.to_string()])
            .expect("remote IPv6 route");
        RemoteIpv6 {
            remote,
            node: node_address,
        }
    }
}

/// Two nodes on one link (TEST-NET-1), each routing the other's pod subnet (the
/// /24 of `a_pod` and `b_pod`) through it, as a CNI's host routes do. Returns the
/// nodes' addresses on the link: (a, b).
pub fn link_nodes(a: &Node, a_pod: &Pod, b: &Node, b_pod: &Pod) -> (Ipv4Addr, Ipv4Addr) {
    let (a_ipv4, b_ipv4) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
    let (a_end, b_end) = (
        sightline_e2e::netns::unique_name("sla"),
        sightline_e2e::netns::unique_name("slb"),
    );
    a.netns()
        .ip(&[
            "link",
            "add",
            &a_end,
            "type",
            "veth",
            "peer",
            "name",
            &b_end,
            "netns",
            b.netns().name(),
        ])
        .expect("node link");
    let subnet = |pod: &Pod| {
        let [x, y, z, _] = pod.ipv4.octets();
        format!("{}/24", Ipv4Addr::new(x, y, z, 0))
    };
    for (node, end, address, peer, remote_pods) in
        [(a, &a_end, a_ipv4, b_ipv4, b_pod), (b, &b_end, b_ipv4, a_ipv4, a_pod)]
    {
        let netns = node.netns();
        netns
            .ip(&["addr", "add", &format!("{address}/24"), "dev", end])
            .expect("link address");
        netns.ip(&["link", "set", end, "up"]).expect("link up");
        netns
            .ip(&["route", "add", &subnet(remote_pods), "via", &peer.to_string()])
            .expect("route to the other node's pods");
    }
    (a_ipv4, b_ipv4)
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Event>>>);

impl EventSink for Collect {
    fn publish(&mut self, event: Event) {
        self.0.lock().expect("events").push(event);
    }
}

/// The datapath with enrichment from manifests, in a node's namespace.
pub struct EnrichedAgent {
    events: Collect,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl EnrichedAgent {
    /// Starts with the cluster in `manifests` (YAML documents) and waits until
    /// both classifiers are attached to each of `pods`' veths.
    pub fn start(node: &Node, manifests: &str, pods: &[&Pod]) -> EnrichedAgent {
        Self::start_as(node, NODE_NAME, manifests, pods)
    }

    /// Like [`EnrichedAgent::start`], for the node called `node_name` in the manifests.
    pub fn start_as(node: &Node, node_name: &str, manifests: &str, pods: &[&Pod]) -> EnrichedAgent {
        let node_name = node_name.to_owned();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cluster.yaml"), manifests).expect("write manifests");
        let k8s_args = K8sArgs {
            kubeconfig: None,
            manifests: Some(dir.path().to_owned()),
            k8s_disabled: false,
            cluster_domain: "cluster.local".into(),
        };
        let events = Collect::default();
        let sink = events.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = node
            .netns()
            .spawn(move || {
                // The manifests are read at start; the directory lives until then.
                let _dir = dir;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async move {
                    let k8s = k8s::start(
                        &k8s_args,
                        IndexConfig {
                            cluster: "default".into(),
                            local_node: node_name.clone(),
                            agent_port: 4244,
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("manifests mode must enable enrichment")?;
                    let mut enricher = k8s.enricher(sink);
                    datapath::run(DatapathArgs::default(), node_name, &mut enricher, async {
                        let _ = stopped.await;
                    })
                    .await
                    .map_err(|e| e.to_string())
                })
            })
            .expect("agent thread");
        let veths: Vec<&str> = pods.iter().map(|p| p.host_veth.as_str()).collect();
        wait_attached(node.netns(), &veths);
        EnrichedAgent {
            events,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn flows(&self) -> Vec<Flow> {
        self.events
            .0
            .lock()
            .expect("events")
            .iter()
            .filter_map(|e| match e {
                Event::Flow(f) => Some(f.to_flow()),
                _ => None,
            })
            .collect()
    }

    /// The types of the agent events published so far (start, endpoint changes).
    pub fn agent_event_types(&self) -> Vec<i32> {
        self.events
            .0
            .lock()
            .expect("events")
            .iter()
            .filter_map(|e| match e {
                Event::Agent { event, .. } => Some(event.r#type),
                _ => None,
            })
            .collect()
    }

    /// Polls the flows until `done` holds for them or 10 s pass; returns them.
    pub fn wait_for(&self, done: impl Fn(&[Flow]) -> bool) -> Vec<Flow> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let flows = self.flows();
            if done(&flows) || Instant::now() > deadline {
                return flows;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the agent (its last flows are delivered first) and returns every flow.
    pub fn stop(mut self) -> Vec<Flow> {
        self.halt();
        self.flows()
    }

    /// Stops the agent and waits until it delivered its last events; they stay readable.
    pub fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("agent thread").expect("agent run");
        }
    }
}

impl Drop for EnrichedAgent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn pod_named(endpoint: Option<&Endpoint>) -> Option<(&str, &str)> {
    endpoint.map(|e| (e.namespace.as_str(), e.pod_name.as_str()))
}

pub fn service_named(service: Option<&Service>) -> Option<(&str, &str)> {
    service.map(|s| (s.namespace.as_str(), s.name.as_str()))
}

pub fn addresses(flow: &Flow) -> (IpAddr, IpAddr) {
    let ip = flow.ip.as_ref().expect("ip");
    (
        ip.source.parse().expect("source"),
        ip.destination.parse().expect("destination"),
    )
}

pub fn source_xlated(flow: &Flow) -> &str {
    flow.ip.as_ref().map_or("", |ip| ip.source_xlated.as_str())
}

pub fn is_tcp(flow: &Flow) -> bool {
    matches!(
        flow.l4.as_ref().and_then(|l| l.protocol.as_ref()),
        Some(layer4::Protocol::Tcp(_))
    )
}
