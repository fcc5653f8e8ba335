//! Settings: globals the agent overrides in the programs before loading them, and
//! the `SETTINGS` map it may rewrite while they run. The names are the symbols the
//! programs export; both sides use these constants.

/// `u32` global: the programs force a ring-buffer reader wakeup on every this many
/// events (counted per CPU) and submit the others without one, for the agent's drain
/// timer; 0 or 1 leave every wakeup to the kernel's default (one whenever the reader has
/// caught up). DNS records always wake it. Set from `--ring-wakeup-every` (default 64).
pub const WAKEUP_EVERY: &str = "WAKEUP_EVERY";
/// `Array<u64>` of the settings the agent changes while the programs run (a new
/// configuration applies without reloading anything), indexed by [`setting`].
pub const SETTINGS: &str = "SETTINGS";

/// Indices into [`SETTINGS`]. The agent writes every entry before attaching anything.
pub mod setting {
    /// One of [`super::aggregation`].
    pub const AGGREGATION_LEVEL: u32 = 0;
    /// Nanoseconds after a flow's last report before a packet of it is reported again
    /// (`report::INTERVAL`) at aggregation `low` and `medium`; `--monitor-aggregation-interval`.
    pub const REPORT_INTERVAL_NS: u32 = 1;
    /// One of [`super::drop_mode`].
    pub const DROP_MODE: u32 = 2;
    /// Nanoseconds between two drop reports of one flow; drops in between are counted
    /// into the next report (`DropState::suppressed`). `--drop-events-interval`.
    pub const DROP_REPORT_INTERVAL_NS: u32 = 3;
    /// Number of entries: the size of the `SETTINGS` array.
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
    /// No drop is reported: the program returns before reading the skb.
    pub const OFF: u32 = 0;
    /// Drops of packets whose 5-tuple the classifiers have seen.
    pub const OBSERVED: u32 = 1;
    /// Every drop in a watched network namespace (`WATCHED_NETNS`), seen flow or not.
    pub const ALL: u32 = 2;
}

/// Field offsets the drop program needs; 0 in `head` means "unknown": drops are not read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkbOffsets {
    /// `sk_buff.head`, the start of the packet buffer the header offsets count from.
    pub head: u32,
    /// `sk_buff.len`, reported as the dropped packet's length.
    pub len: u32,
    /// `sk_buff.network_header`, a `u16` field holding the IP header's offset from `head`
    /// (`0xffff` = unset: the drop is skipped).
    pub network_header: u32,
    /// `sk_buff.transport_header`; filled from BTF, not read by the drop program, which
    /// finds the transport header by parsing the IP header.
    pub transport_header: u32,
    /// `sk_buff.dev`, the `struct net_device *` the packet was on (NULL: ifindex 0).
    pub dev: u32,
    /// `net_device.ifindex`, reported as `FlowKey::ifindex`.
    pub net_device_ifindex: u32,
    /// `sk_buff.protocol`; filled from BTF, not read by the drop program, which takes
    /// the IP version from the header itself.
    pub protocol: u32,
    /// `net_device.nd_net` (the `struct net *` inside `possible_net_t`).
    pub net_device_nd_net: u32,
    /// `net.ns.inum`, the namespace's inode number; 0 = unknown: no namespace filter.
    pub net_ns_inum: u32,
    /// Padding, always 0.
    pub _pad: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), integers only, no implicit padding.
unsafe impl aya::Pod for SkbOffsets {}
