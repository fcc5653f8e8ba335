//! Simulated nodes and pods.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::Result;
use crate::netns::{Netns, unique_name};

static SUBNET: AtomicU8 = AtomicU8::new(0);

/// A node: a namespace with a bridge `br0` that its pods' veths are enslaved to.
/// Pods are dropped before the node, so the guards tear down in the right order.
#[derive(Debug)]
pub struct Node {
    pods_created: u8,
    subnet: u8,
    netns: Netns,
}

/// A pod: a namespace whose `eth0` is the peer of `host_veth` in the node's namespace.
#[derive(Debug)]
pub struct Pod {
    /// The pod's namespace; run clients and servers in it with [`Netns::run`].
    pub netns: Netns,
    /// `eth0`'s address, in the node's /24.
    pub ipv4: Ipv4Addr,
    /// `eth0`'s address, in the node's /64 (added without duplicate detection, so usable at once).
    pub ipv6: Ipv6Addr,
    /// The node-side end of the pod's veth (what the agent observes).
    pub host_veth: String,
    /// Interface index of `host_veth` inside the node's namespace.
    pub host_ifindex: u32,
}

impl Node {
    /// Each node gets its own /24 (and /64) so concurrent tests never share a 5-tuple.
    pub fn new() -> Result<Self> {
        let netns = Netns::new("sln")?;
        netns.ip(&["link", "add", "br0", "type", "bridge"])?;
        netns.ip(&["link", "set", "br0", "up"])?;
        let subnet = SUBNET.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            pods_created: 0,
            subnet,
            netns,
        })
    }

    /// The node's namespace, where its bridge and the pods' host-side veths live
    /// (and where an agent for this node runs).
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    fn octet2(&self) -> u8 {
        pod_octet2(std::process::id())
    }

    /// Creates a pod: a new namespace with `eth0` up and addressed, its peer enslaved
    /// to `br0`. The pod has no default route; pods of one node reach each other.
    pub fn add_pod(&mut self) -> Result<Pod> {
        self.pods_created += 1;
        let host = self.pods_created + 1;
        let netns = Netns::new("slp")?;
        let host_veth = unique_name("slv");
        self.netns.ip(&[
            "link",
            "add",
            &host_veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            netns.name(),
        ])?;
        self.netns.ip(&["link", "set", &host_veth, "master", "br0", "up"])?;
        let ipv4 = Ipv4Addr::new(10, self.octet2(), self.subnet, host);
        let ipv6 = Ipv6Addr::new(
            0xfd00,
            std::process::id() as u16,
            self.subnet as u16,
            0,
            0,
            0,
            0,
            host as u16,
        );
        netns.ip(&["addr", "add", &format!("{ipv4}/24"), "dev", "eth0"])?;
        netns.ip(&["-6", "addr", "add", &format!("{ipv6}/64"), "dev", "eth0", "nodad"])?;
        netns.ip(&["link", "set", "eth0", "up"])?;
        let host_ifindex = ifindex(&self.netns, &host_veth)?;
        Ok(Pod {
            netns,
            ipv4,
            ipv6,
            host_veth,
            host_ifindex,
        })
    }
}

fn ifindex(netns: &Netns, name: &str) -> Result<u32> {
    let out = netns.ip(&["-o", "link", "show", "dev", name])?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| crate::HarnessError::Command {
            command: format!("ip link show {name}"),
            stderr: text.into_owned(),
        })
}

/// The second octet of a process's pod addresses: processes (nextest runs one per test)
/// are spread over 200 values in 10.16.0.0–10.231.255.255, skipping Kubernetes' default
/// Service range 10.96.0.0/12. Tests give their Services ClusterIPs there (10.96.0.10);
/// a pod whose own /24 held that address would look for it on its link instead of
/// sending it to the node, and fail with "no route to host".
fn pod_octet2(pid: u32) -> u8 {
    let spread = (pid % 200) as u8;
    if spread < 80 { 16 + spread } else { 112 + (spread - 80) }
}

#[cfg(test)]
mod address_tests {
    use super::pod_octet2;

    #[test]
    fn pod_subnets_stay_out_of_the_service_range_and_the_demo_s() {
        let used: std::collections::BTreeSet<u8> = (0..1000).map(pod_octet2).collect();
        assert_eq!(used.len(), 200, "every process slot has its own octet");
        assert!(used.iter().all(|octet| !(96..112).contains(octet)), "{used:?}");
        assert!(used.iter().all(|octet| (16..250).contains(octet)), "{used:?}");
    }
}
