//! Indices of the per-CPU counter array (`STATS`) the programs increment and the agent reads.

/// Packets the TC and XDP programs saw, parsed or not (kernel drops are not counted here).
pub const PACKETS: u32 = 0;
/// Not IPv4 or IPv6 (ARP, LLDP, ...).
pub const NOT_IP: u32 = 1;
/// Headers ended before the parser could read them (truncated or too deep).
pub const TRUNCATED: u32 = 2;
/// An IPv6 extension-header chain longer than the parser follows.
pub const IPV6_EXT_TOO_DEEP: u32 = 3;
/// A non-first IP fragment: no L4 header to read.
pub const FRAGMENT: u32 = 4;
/// Transport protocol the parser does not decode (reported with ports 0).
pub const OTHER_L4: u32 = 5;
/// `bpf_ringbuf_reserve` failed: the event was lost (surfaced as `LostEvent`).
pub const RINGBUF_LOST: u32 = 6;
/// The flow map rejected an insert.
pub const FLOW_MAP_FULL: u32 = 7;
/// Drop reports withheld by the per-flow drop rate limit.
pub const DROPS_SUPPRESSED: u32 = 8;
/// Kernel drops that passed the drop mode and namespace filters, before the rate limit.
pub const DROPS_SEEN: u32 = 9;

/// L7 segments copied into the ring.
pub const L7_CAPTURED: u32 = 10;
/// `bpf_skb_load_bytes` failed on an L7 segment: not captured.
pub const L7_COPY_FAILED: u32 = 11;
/// `--l7-detect` connections whose first payload matched no protocol.
pub const L7_NOT_DETECTED: u32 = 12;

/// Number of counters: the size of the `STATS` array.
pub const COUNT: u32 = 13;
