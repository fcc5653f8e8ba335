//! Two nodes joined by a bridge in the host namespace; pods routed between nodes.
//!
//! ```text
//!  host: bridge sl-demo0 (10.250.0.254/24) ── relay on 127.0.0.1:4245
//!        ├── veth ── node-a eth0 10.250.0.1, br0 = pod gateway, agent on 10.250.0.1:4244 (metrics :9965)
//!        │            └── pods frontend, dns
//!        └── veth ── node-b eth0 10.250.0.2, br0 = pod gateway, agent on 10.250.0.2:4244 (metrics :9965)
//!                     └── pods backend, db
//! ```
//! Nodes route each other's pod subnets over the bridge, so pod-to-pod traffic crosses
//! both nodes' agents. Every piece is removed when its guard drops.

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::DemoError;
use super::certs::Pki;
use super::processes::Process;
use crate::netns::run;
use crate::{Node, Pod};

const BRIDGE: &str = "sl-demo0";
/// Hubble's agent port; each agent listens on it at its node's uplink address.
const AGENT_PORT: u16 = 4244;
/// Hubble's metrics port (`hubble.metrics.port`), also at each node's uplink address.
const METRICS_PORT: u16 = 9965;
/// The handlers of Cilium's documented Hubble metrics example (`hubble.metrics.enabled`),
/// with workload contexts on `drop` so that the dashboards' top drop pairs have names.
pub(crate) const DEMO_METRICS: &str = "dns drop:sourceContext=workload-name|reserved-identity;destinationContext=workload-name|reserved-identity tcp flow port-distribution icmp httpV2:exemplars=true;labelsContext=source_ip,source_namespace,source_workload,destination_ip,destination_namespace,destination_workload,traffic_direction";
const UPLINK_PREFIX: [u8; 3] = [10, 250, 0];
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 254);

/// A pod of the demo, by its manifest name (`frontend`, `dns`, `backend`, `db`).
pub(crate) struct DemoPod {
    pub(crate) name: &'static str,
    pub(crate) node: &'static str,
    pub(crate) pod: Pod,
}

/// A node of the demo (`node-a`, `node-b`), joined to the host bridge by its uplink.
pub(crate) struct DemoNode {
    pub(crate) name: &'static str,
    pub(crate) uplink_ip: Ipv4Addr,
    pub(crate) node: Node,
}

impl DemoNode {
    /// Where the node's agent serves mutual TLS, reachable from the host over the bridge.
    pub(crate) fn agent_address(&self) -> String {
        format!("{}:{AGENT_PORT}", self.uplink_ip)
    }

    /// Where the node's agent serves `/metrics` (plain HTTP, as Hubble's default),
    /// reachable from the host over the bridge.
    pub(crate) fn metrics_address(&self) -> String {
        format!("{}:{METRICS_PORT}", self.uplink_ip)
    }
}

/// The unix socket `node`'s agent serves (without TLS, as Hubble's does) in `workdir`.
pub(crate) fn agent_socket(workdir: &Path, node: &str) -> PathBuf {
    workdir.join(format!("{node}.sock"))
}

/// The host-side bridge and the host ends of the node uplinks, deleted on drop.
/// The uplinks are deleted explicitly: a namespace's veths otherwise linger for a
/// moment after `ip netns del` while the kernel cleans up asynchronously.
struct Bridge {
    uplinks: Vec<String>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        for uplink in &self.uplinks {
            let _ = run("ip", &["link", "del", uplink]);
        }
        let _ = run("ip", &["link", "del", BRIDGE]);
    }
}

/// The demo's nodes and pods, removed on drop.
pub(crate) struct DemoCluster {
    // Field order is drop order: pods, then nodes, then the bridge.
    pods: Vec<DemoPod>,
    nodes: Vec<DemoNode>,
    _bridge: Bridge,
}

fn subnet_of(ip: Ipv4Addr) -> (Ipv4Addr, String) {
    let [a, b, c, _] = ip.octets();
    (Ipv4Addr::new(a, b, c, 1), format!("{a}.{b}.{c}.0/24"))
}

impl DemoCluster {
    pub(crate) fn build() -> Result<Self, DemoError> {
        // A stale bridge from a demo that was killed hard would make `add` fail.
        let _ = run("ip", &["link", "del", BRIDGE]);
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
        let mut bridge = Bridge { uplinks: Vec::new() };
        run("ip", &["addr", "add", &format!("{HOST_IP}/24"), "dev", BRIDGE])?;
        run("ip", &["link", "set", BRIDGE, "up"])?;

        let layout: [(&'static str, [&'static str; 2]); 2] =
            [("node-a", ["frontend", "dns"]), ("node-b", ["backend", "db"])];
        let mut nodes = Vec::new();
        let mut pods = Vec::new();
        for (index, (name, pod_names)) in layout.into_iter().enumerate() {
            let mut node = Node::new()?;
            let uplink_ip = Ipv4Addr::new(UPLINK_PREFIX[0], UPLINK_PREFIX[1], UPLINK_PREFIX[2], index as u8 + 1);
            let host_end = format!("{BRIDGE}-{}", index + 1);
            run(
                "ip",
                &[
                    "link",
                    "add",
                    &host_end,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "uplink0",
                    "netns",
                    node.netns().name(),
                ],
            )?;
            bridge.uplinks.push(host_end.clone());
            run("ip", &["link", "set", &host_end, "master", BRIDGE, "up"])?;
            node.netns()
                .ip(&["addr", "add", &format!("{uplink_ip}/24"), "dev", "uplink0"])?;
            node.netns().ip(&["link", "set", "uplink0", "up"])?;
            node.netns().exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
            for pod_name in pod_names {
                let pod = node.add_pod()?;
                let (gateway, _) = subnet_of(pod.ipv4);
                if pods.iter().all(|p: &DemoPod| p.node != name) {
                    node.netns()
                        .ip(&["addr", "add", &format!("{gateway}/24"), "dev", "br0"])?;
                }
                pod.netns
                    .ip(&["route", "add", "default", "via", &gateway.to_string()])?;
                pods.push(DemoPod {
                    name: pod_name,
                    node: name,
                    pod,
                });
            }
            nodes.push(DemoNode { name, uplink_ip, node });
        }
        // Each node reaches the other node's pods through that node's uplink.
        for node in &nodes {
            for other in nodes.iter().filter(|o| o.name != node.name) {
                let Some(pod) = pods.iter().find(|p| p.node == other.name) else {
                    continue;
                };
                let (_, subnet) = subnet_of(pod.pod.ipv4);
                node.node
                    .netns()
                    .ip(&["route", "add", &subnet, "via", &other.uplink_ip.to_string()])?;
            }
        }
        Ok(Self {
            pods,
            nodes,
            _bridge: bridge,
        })
    }

    pub(crate) fn nodes(&self) -> &[DemoNode] {
        &self.nodes
    }

    pub(crate) fn node_names(&self) -> Vec<&'static str> {
        self.nodes.iter().map(|n| n.name).collect()
    }

    pub(crate) fn pods(&self) -> &[DemoPod] {
        &self.pods
    }

    pub(crate) fn pod(&self, name: &str) -> Option<&DemoPod> {
        self.pods.iter().find(|p| p.name == name)
    }

    pub(crate) fn node(&self, name: &str) -> Option<&DemoNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// One agent per node, serving mutual TLS on its uplink address and observing its
    /// pods' veths. Pod metadata and the peer list come from the manifests in `manifests`.
    pub(crate) fn start_agents(
        &self,
        binary: &Path,
        pki: &Pki,
        logs: &Path,
        manifests: &Path,
    ) -> Result<Vec<Process>, DemoError> {
        let mut agents = Vec::new();
        for node in &self.nodes {
            let mut command = Command::new("ip");
            command
                .args(["netns", "exec", node.node.netns().name()])
                .arg(binary)
                .args([
                    "--node-name",
                    node.name,
                    "--listen-address",
                    &node.agent_address(),
                    "--socket-path",
                    &agent_socket(logs, node.name).to_string_lossy(),
                    "--interfaces",
                    "slv*",
                    // The frontend's HTTP calls become request/response flows.
                    "--l7-ports",
                    "http=8080",
                    "--metrics-server",
                    &node.metrics_address(),
                    "--metrics",
                    DEMO_METRICS,
                ]);
            command.arg("--manifests").arg(manifests);
            command.arg("--tls-cert-file").arg(&pki.agent_cert);
            command.arg("--tls-key-file").arg(&pki.agent_key);
            command.arg("--tls-client-ca-files").arg(&pki.ca);
            // Out of the terminal's process group, so a Ctrl-C reaches only the demo,
            // which stops the agents after it is done with them.
            command.process_group(0);
            let mut agent = Process::spawn(node.name, command, logs)?;
            std::thread::sleep(std::time::Duration::from_millis(300));
            agent.check_running(logs)?;
            agents.push(agent);
        }
        Ok(agents)
    }

    /// The relay in the host namespace: discovers the agents through node-a's peer service.
    pub(crate) fn start_relay(
        &self,
        binary: &Path,
        pki: &Pki,
        logs: &Path,
        listen: &str,
    ) -> Result<Process, DemoError> {
        let first = self.nodes.first().ok_or_else(|| DemoError::Setup("no nodes".into()))?;
        let mut command = Command::new(binary);
        command.args([
            "--listen-address",
            listen,
            "--disable-server-tls",
            "--health-listen-address",
            "",
            "--metrics-listen-address",
            "",
            "--peer-service",
            &first.agent_address(),
            "--retry-timeout",
            "2s",
        ]);
        command.arg("--tls-hubble-server-ca-files").arg(&pki.ca);
        command.arg("--tls-hubble-client-cert-file").arg(&pki.relay_cert);
        command.arg("--tls-hubble-client-key-file").arg(&pki.relay_key);
        // A Ctrl-C reaching the relay would end the demo's flow stream with an error.
        command.process_group(0);
        let mut relay = Process::spawn("relay", command, logs)?;
        std::thread::sleep(std::time::Duration::from_millis(300));
        relay.check_running(logs)?;
        Ok(relay)
    }
}
