//! Settings: globals the agent overrides in the programs before loading them, and
//! the `SETTINGS` map it may rewrite while they run. The names are the symbols the
//! programs export; both sides use these constants.

pub const WAKEUP_EVERY: &str = "WAKEUP_EVERY";
/// `Array<u64>` of the settings the agent changes while the programs run (a new
/// configuration applies without reloading anything), indexed by [`setting`].
pub const SETTINGS: &str = "SETTINGS";

/// Indices into [`SETTINGS`]. The agent writes every entry before attaching anything.
pub mod setting {
    /// One of [`super::aggregation`].
    pub const AGGREGATION_LEVEL: u32 = 0;
    pub const REPORT_INTERVAL_NS: u32 = 1;
    /// One of [`super::drop_mode`].
    pub const DROP_MODE: u32 = 2;
    pub const DROP_REPORT_INTERVAL_NS: u32 = 3;
    pub const COUNT: u32 = 4;
}

/// `struct sk_buff` / `struct net_device` field offsets, read by the agent from the kernel's BTF.
pub const SKB_OFFSETS: &str = "SKB_OFFSETS";
/// Map of the network namespaces (by inode number) whose drops this agent reports:
/// its own and its pods'. Several agents can share one kernel (kind, k3d, the demo),
/// and `kfree_skb` sees every namespace.
pub const WATCHED_NETNS: &str = "WATCHED_NETNS";
/// Bytes of TCP payload copied per segment on connections selected for L7 (1..=`L7_MAX_CAPTURE`).
pub const L7_CAPTURE_BYTES: &str = "L7_CAPTURE_BYTES";
/// Non-zero: connections on any port whose first payload looks like HTTP/1, HTTP/2 or
/// Kafka are selected for L7 (`--l7-detect`).
pub const L7_DETECT: &str = "L7_DETECT";
/// Non-zero when any port is configured in [`L7_PORTS`]; zero skips the port lookups.
pub const L7_PORTS_ENABLED: &str = "L7_PORTS_ENABLED";
/// Array map, indexed by TCP port, of the `l7_protocol` selected for that server port.
pub const L7_PORTS: &str = "L7_PORTS";
/// LRU map `L7ConnKey` → `L7ConnState` of connections `--l7-detect` follows.
pub const L7_CONNECTIONS: &str = "L7_CONNECTIONS";
/// Capacity of [`L7_CONNECTIONS`].
pub const L7_CONNECTIONS_MAX: u32 = 65536;
/// Capacity of [`WATCHED_NETNS`]: a node's pods plus the node itself.
pub const WATCHED_NETNS_MAX: u32 = 4096;

/// Monitor aggregation levels, named as Cilium's `--monitor-aggregation`.
pub mod aggregation {
    /// Report every packet.
    pub const NONE: u32 = 0;
    /// Report new flows, every packet that adds any TCP flag not seen before in the flow, and
    /// once per interval.
    pub const LOW: u32 = 1;
    /// Report new flows, packets whose flow gains SYN, FIN or RST, and once per interval.
    pub const MEDIUM: u32 = 2;
    /// Report new flows and packets whose flow gains SYN, FIN or RST; no periodic reports.
    pub const MAXIMUM: u32 = 3;
}

/// Which kernel drops `tp_btf/kfree_skb` reports.
pub mod drop_mode {
    pub const OFF: u32 = 0;
    /// Drops of packets whose 5-tuple the classifiers have seen.
    pub const OBSERVED: u32 = 1;
    pub const ALL: u32 = 2;
}

/// Field offsets the drop program needs; 0 in `head` means "unknown": drops are not read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbOffsets {
    pub head: u32,
    pub len: u32,
    pub network_header: u32,
    pub transport_header: u32,
    pub dev: u32,
    pub net_device_ifindex: u32,
    pub protocol: u32,
    /// `net_device.nd_net` (the `struct net *` inside `possible_net_t`).
    pub net_device_nd_net: u32,
    /// `net.ns.inum`, the namespace's inode number; 0 = unknown: no namespace filter.
    pub net_ns_inum: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no implicit padding.
unsafe impl aya::Pod for SkbOffsets {}
