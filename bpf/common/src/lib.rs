//! The contract between Sightline's eBPF programs and the agent.
//!
//! Every record the kernel side writes into a map or ring buffer is declared here
//! once, `#[repr(C)]` with explicit padding, so both sides agree on its layout
//! byte for byte. The crate is `no_std` and dependency-free (bar `aya` for the
//! userspace `Pod` impls behind the `user` feature) so the eBPF programs (built
//! for `bpfel-unknown-none`) and the userspace agent compile the same source.

#![no_std]

pub mod config;
pub mod stats;

/// Version of the event layout; bumped whenever a shared struct changes shape, so an
/// agent never reads records written by programs built from another layout.
pub const EVENT_LAYOUT_VERSION: u32 = 3;

/// Where in the datapath a packet was seen (`FlowKey::hook`).
pub mod hook {
    /// TC/TCX ingress of the interface: on a pod's host-side veth, traffic leaving the pod.
    pub const TC_INGRESS: u8 = 0;
    /// TC/TCX egress of the interface: on a pod's host-side veth, traffic entering the pod.
    pub const TC_EGRESS: u8 = 1;
    /// XDP on a host uplink: traffic entering the node.
    pub const XDP: u8 = 2;
    /// `tp_btf/kfree_skb`: the kernel freed the packet as a drop.
    pub const KFREE_SKB: u8 = 3;
}

/// `FlowEvent::kind`: which record follows the common header.
pub mod kind {
    /// A `FlowEvent` for an observed (forwarded) packet.
    pub const TRACE: u32 = 1;
    /// A `FlowEvent` for a packet the kernel dropped; `reason` is its `skb_drop_reason`.
    pub const DROP: u32 = 2;
    /// A `DnsEvent`: a `FlowEvent` followed by the DNS message.
    pub const DNS: u32 = 3;
    /// An `L7Event`: a `FlowEvent` followed by the first bytes of a TCP segment's payload
    /// on a connection selected for L7 parsing.
    pub const L7: u32 = 4;
}

/// `FlowEvent::reason` bits for `kind::TRACE`: why an aggregated flow was reported.
pub mod report {
    pub const NEW_FLOW: u32 = 1;
    pub const TCP_FLAGS: u32 = 2;
    pub const INTERVAL: u32 = 4;
    /// Aggregation level `none`: every packet is reported.
    pub const EVERY_PACKET: u32 = 8;
}

/// TCP flag bits as carried in `FlowEvent::tcp_flags` (the header's flag byte, plus NS as bit 8).
pub mod tcp_flags {
    pub const FIN: u16 = 0x01;
    pub const SYN: u16 = 0x02;
    pub const RST: u16 = 0x04;
    pub const PSH: u16 = 0x08;
    pub const ACK: u16 = 0x10;
    pub const URG: u16 = 0x20;
    pub const ECE: u16 = 0x40;
    pub const CWR: u16 = 0x80;
    pub const NS: u16 = 0x100;
}

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_SCTP: u8 = 132;

/// Largest DNS message copied out of a packet (the classic UDP limit).
pub const DNS_MAX_LEN: usize = 512;
pub const DNS_PORT: u16 = 53;

/// Largest L7 capture per segment (`--l7-capture-bytes` is at most this).
pub const L7_MAX_CAPTURE: usize = 1024;
/// Default `--l7-capture-bytes`: enough for the request line and usual headers.
pub const L7_DEFAULT_CAPTURE: u32 = 512;
/// Entries of the port → protocol array (every TCP port).
pub const L7_PORT_ENTRIES: u32 = 65536;

/// What a connection was selected for: values of the port array and of `L7ConnState::protocol`.
pub mod l7_protocol {
    pub const NONE: u8 = 0;
    pub const HTTP1: u8 = 1;
    /// HTTP/2, which covers gRPC.
    pub const HTTP2: u8 = 2;
    pub const KAFKA: u8 = 3;
    /// `--l7-detect`: the connection's SYN was seen, its first payload not yet.
    pub const PENDING: u8 = 0xff;
}

/// Identity of an aggregated flow: one direction of a connection at one hook of one interface.
///
/// Addresses are in network byte order; IPv4 addresses fill the first 4 bytes. Ports are
/// in host byte order. For ICMP the ports hold the echo identifier (both sides), so a
/// request and its reply share a connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub ifindex: u32,
    pub protocol: u8,
    /// 4 or 6.
    pub ip_version: u8,
    /// One of `hook::*`.
    pub hook: u8,
    pub _pad: u8,
    pub _pad2: u32,
}

/// Per-flow counters kept in the kernel's LRU map. Times are on the coarse
/// monotonic clock (interval checks only); counts are approximate when several
/// CPUs update one flow at once.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// When the flow was first seen (for inspection with `bpftool map dump`).
    pub first_seen_ns: u64,
    pub last_report_ns: u64,
    pub packets: u64,
    pub bytes: u64,
    /// OR of every packet's TCP flags.
    pub tcp_flags: u32,
    pub _pad: u32,
}

/// The record written to the ring buffer for every report (trace or drop).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    /// One of `kind::*`.
    pub kind: u32,
    /// `report::*` bits for traces; the kernel's `skb_drop_reason` for drops.
    pub reason: u32,
    /// `bpf_ktime_get_boot_ns()` when the reported packet was seen.
    pub timestamp_ns: u64,
    pub key: FlowKey,
    /// Flow totals so far (for drops: drops of this flow since the last drop report).
    pub packets: u64,
    pub bytes: u64,
    /// Length of the reported packet.
    pub packet_len: u32,
    /// Flags of the reported packet.
    pub tcp_flags: u16,
    /// OR of the flags of every packet of the flow so far.
    pub flow_tcp_flags: u16,
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Bytes of DNS message that follow (only for `kind::DNS`).
    pub dns_len: u16,
    pub _pad: u32,
}

/// A `FlowEvent` followed by the (possibly truncated) DNS message of the packet.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsEvent {
    pub flow: FlowEvent,
    pub payload: [u8; DNS_MAX_LEN],
}

/// A `FlowEvent` (kind `L7`) followed by the first bytes of one TCP segment's payload.
/// The ring reservation is always this size; only `captured_len` bytes are meaningful.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct L7Event {
    pub flow: FlowEvent,
    /// Sequence number of the segment's first payload byte.
    pub tcp_seq: u32,
    /// The segment's whole payload length (GSO segments included), of which the first
    /// `captured_len` bytes follow.
    pub payload_len: u32,
    pub captured_len: u16,
    /// One of `l7_protocol::*` (never `NONE` or `PENDING`).
    pub protocol: u8,
    /// 1 when the segment travels client → server.
    pub from_client: u8,
    pub _pad: u32,
    pub payload: [u8; L7_MAX_CAPTURE],
}

/// Key of the connection map of `--l7-detect`: both ends of a TCP connection in a fixed
/// order (side `a` is the lower port, or the lower address on equal ports), so the two
/// directions of one connection find one entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct L7ConnKey {
    pub a_addr: [u8; 16],
    pub b_addr: [u8; 16],
    pub a_port: u16,
    pub b_port: u16,
    pub _pad: u32,
}

/// Value of the connection map of `--l7-detect`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L7ConnState {
    /// One of `l7_protocol::*`; `NONE` once the first payload looked like none of them.
    pub protocol: u8,
    /// 1 when side `a` of the key opened the connection (sent the SYN).
    pub client_is_a: u8,
    pub _pad: u16,
}

/// Drop reports per flow are rate-limited; this is the per-flow state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropState {
    pub last_report_ns: u64,
    pub suppressed: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `repr(C)`, contain only integers and byte arrays, and
    // have explicit padding fields, so every bit pattern is valid and none is uninitialised.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowStats {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::DropState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::L7ConnKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::L7ConnState {}
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 48);
const _: () = assert!(core::mem::size_of::<FlowEvent>() == 112);
const _: () = assert!(core::mem::size_of::<DnsEvent>() == 112 + DNS_MAX_LEN);
const _: () = assert!(core::mem::size_of::<L7Event>() == 112 + 16 + L7_MAX_CAPTURE);
const _: () = assert!(core::mem::size_of::<L7ConnKey>() == 40);
const _: () = assert!(core::mem::size_of::<L7ConnState>() == 4);
