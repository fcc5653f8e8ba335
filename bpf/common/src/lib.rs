//! The contract between Sightline's eBPF programs and the agent.
//!
//! Every record the kernel side writes into a map or ring buffer is declared here
//! once, `#[repr(C)]` with explicit padding, so both sides agree on its layout
//! byte for byte. The crate is `no_std` and dependency-free (bar `aya` for the
//! userspace `Pod` impls behind the `user` feature) so the eBPF programs (built
//! for `bpfel-unknown-none`) and the userspace agent compile the same source.

#![no_std]
#![warn(missing_docs)]

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
    /// The packet found no entry in the flow map: the flow's first packet, or the first
    /// since its entry was evicted from the LRU map (the totals then restart at 1).
    pub const NEW_FLOW: u32 = 1;
    /// The packet carried TCP flags the flow had not shown before: any new flag at
    /// aggregation `low`, only a new SYN, FIN or RST at `medium` and `maximum`.
    pub const TCP_FLAGS: u32 = 2;
    /// The report interval (`setting::REPORT_INTERVAL_NS`) had passed since the flow's last
    /// report; never set at aggregation `maximum`. May combine with `TCP_FLAGS`.
    pub const INTERVAL: u32 = 4;
    /// Aggregation level `none`: every packet is reported.
    pub const EVERY_PACKET: u32 = 8;
}

/// TCP flag bits as carried in `FlowEvent::tcp_flags` (the header's flag byte, plus NS as bit 8).
pub mod tcp_flags {
    /// The sender has no more data: one half of the connection closes.
    pub const FIN: u16 = 0x01;
    /// Opens a connection: alone from the client, with `ACK` in the server's answer.
    pub const SYN: u16 = 0x02;
    /// Aborts the connection (or refuses one: the answer to a SYN on a closed port).
    pub const RST: u16 = 0x04;
    /// The receiver should hand the buffered data to the application now.
    pub const PSH: u16 = 0x08;
    /// The acknowledgement number is valid: set on every segment after the first SYN.
    pub const ACK: u16 = 0x10;
    /// The urgent pointer is valid (rare today).
    pub const URG: u16 = 0x20;
    /// ECN-Echo: in a SYN, ECN capable; later, the peer saw congestion marked on the path.
    pub const ECE: u16 = 0x40;
    /// Congestion Window Reduced: the sender answered an ECN-Echo.
    pub const CWR: u16 = 0x80;
    /// ECN nonce (RFC 3540, historic): the low bit of the header's data-offset byte,
    /// carried as bit 8 because it is not in the flag byte.
    pub const NS: u16 = 0x100;
}

/// IANA protocol number of ICMP for IPv4, as in [`FlowKey::protocol`]: the parser reads its
/// type and code, and for echo request/reply (8/0) the identifier into both ports.
pub const IPPROTO_ICMP: u8 = 1;
/// IANA protocol number of TCP: ports, flags and sequence number are read, and its payload
/// may be captured as DNS or L7.
pub const IPPROTO_TCP: u8 = 6;
/// IANA protocol number of UDP: ports are read; payload to or from [`DNS_PORT`] is copied as DNS.
pub const IPPROTO_UDP: u8 = 17;
/// IANA protocol number of ICMPv6 (the IPv6 next header after any extension headers):
/// type and code are read, and for echo request/reply (128/129) the identifier into both ports.
pub const IPPROTO_ICMPV6: u8 = 58;
/// IANA protocol number of SCTP: only the ports are read; its chunked payload never is.
pub const IPPROTO_SCTP: u8 = 132;

/// Largest DNS message copied out of a packet (the classic UDP limit).
pub const DNS_MAX_LEN: usize = 512;
/// Server port that makes a UDP or TCP packet a DNS event (`kind::DNS`) when either of
/// its ports is this one, in host byte order like [`FlowKey::src_port`].
pub const DNS_PORT: u16 = 53;

/// Largest L7 capture per segment (`--l7-capture-bytes` is at most this).
pub const L7_MAX_CAPTURE: usize = 1024;
/// Default `--l7-capture-bytes`: enough for the request line and usual headers.
pub const L7_DEFAULT_CAPTURE: u32 = 512;
/// Entries of the port → protocol array (every TCP port).
pub const L7_PORT_ENTRIES: u32 = 65536;

/// What a connection was selected for: values of the port array and of `L7ConnState::protocol`.
pub mod l7_protocol {
    /// Not selected: in the port array, no protocol is configured for that port; in a
    /// connection's state, its first payload looked like none of the protocols below.
    pub const NONE: u8 = 0;
    /// HTTP/1.x: configured for the port, or detected from a request line that starts
    /// with a known method (`GET `, `POST`, ...).
    pub const HTTP1: u8 = 1;
    /// HTTP/2, which covers gRPC.
    pub const HTTP2: u8 = 2;
    /// The Kafka wire protocol: configured for the port, or detected from a plausible
    /// request header (size, API key, API version, client id length).
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
    /// Source address of the packet's IP header, network byte order; for IPv4 the last
    /// 12 bytes are 0.
    pub src_addr: [u8; 16],
    /// Destination address of the packet's IP header, laid out as `src_addr`.
    pub dst_addr: [u8; 16],
    /// TCP/UDP/SCTP source port in host byte order; the echo identifier for ICMP echo
    /// request/reply; 0 for other ICMP messages, non-first fragments and protocols the
    /// parser does not decode.
    pub src_port: u16,
    /// Destination port, with the same rules as `src_port`.
    pub dst_port: u16,
    /// Interface the hook ran on: the skb's device at TC, the receiving device at XDP,
    /// the skb's device at a drop (0 when the freed skb had none).
    pub ifindex: u32,
    /// IANA protocol number from the IPv4 header, or for IPv6 the next header after any
    /// extension headers; one of `IPPROTO_*`, or another number whose ports stay 0.
    pub protocol: u8,
    /// 4 or 6.
    pub ip_version: u8,
    /// One of `hook::*`.
    pub hook: u8,
    /// Padding, always 0 so that keys compare and hash by their meaningful bytes.
    pub _pad: u8,
    /// Padding, always 0 (see `_pad`).
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
    /// When the flow was last reported (its first packet counts as a report); the
    /// periodic report is due once `setting::REPORT_INTERVAL_NS` has passed since.
    pub last_report_ns: u64,
    /// Packets of the flow since its entry was created (1 for the first).
    pub packets: u64,
    /// Sum of those packets' lengths as the hook saw them (see `FlowEvent::packet_len`).
    pub bytes: u64,
    /// OR of every packet's TCP flags.
    pub tcp_flags: u32,
    /// Padding, always 0.
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
    /// The flow the packet belongs to; for drops, `hook` is `hook::KFREE_SKB`.
    pub key: FlowKey,
    /// Flow totals so far (for drops: drops of this flow since the last drop report).
    /// DNS and L7 records carry 1: they describe their one packet.
    pub packets: u64,
    /// Traces: the flow's byte total so far (`FlowStats::bytes`). Drops, DNS and L7
    /// records: the length of this one packet, as `packet_len`.
    pub bytes: u64,
    /// Length of the reported packet in bytes: the whole frame, Ethernet header included,
    /// at TC and XDP; `sk_buff.len` at a drop, which may start at the network header.
    pub packet_len: u32,
    /// Flags of the reported packet.
    pub tcp_flags: u16,
    /// OR of the flags of every packet of the flow so far.
    /// Only traces carry the flow's OR; drops, DNS and L7 records repeat `tcp_flags`.
    pub flow_tcp_flags: u16,
    /// Source MAC of the frame, in wire order; all zero for drops (the freed skb's
    /// link-layer header is not read) and when the frame was too short.
    pub eth_src: [u8; 6],
    /// Destination MAC of the frame, with the same rules as `eth_src`.
    pub eth_dst: [u8; 6],
    /// ICMP or ICMPv6 message type from the packet's header; 0 for other protocols, so
    /// read it only when `key.protocol` is an ICMP one (0 is also echo reply there).
    pub icmp_type: u8,
    /// ICMP or ICMPv6 message code; 0 for other protocols.
    pub icmp_code: u8,
    /// Bytes of DNS message that follow (only for `kind::DNS`).
    pub dns_len: u16,
    /// Padding, always 0.
    pub _pad: u32,
}

/// A `FlowEvent` followed by the (possibly truncated) DNS message of the packet.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DnsEvent {
    /// The packet's header record, `kind::DNS`, with `dns_len` set to the copied length.
    pub flow: FlowEvent,
    /// The UDP payload, or for TCP the segment's payload with each message's 2-byte
    /// length prefix; only the first `flow.dns_len` bytes are meaningful.
    pub payload: [u8; DNS_MAX_LEN],
}

/// A `FlowEvent` (kind `L7`) followed by the first bytes of one TCP segment's payload.
/// The ring reservation is always this size; only `captured_len` bytes are meaningful.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct L7Event {
    /// The segment's header record, `kind::L7`, always written at TC (never XDP or drops).
    pub flow: FlowEvent,
    /// Sequence number of the segment's first payload byte.
    pub tcp_seq: u32,
    /// The segment's whole payload length (GSO segments included), of which the first
    /// `captured_len` bytes follow.
    pub payload_len: u32,
    /// Bytes of `payload` filled: the smaller of `payload_len` and the configured
    /// `L7_CAPTURE_BYTES`; 0 for a FIN or RST without payload, reported so the agent
    /// learns that the connection ended.
    pub captured_len: u16,
    /// One of `l7_protocol::*` (never `NONE` or `PENDING`).
    pub protocol: u8,
    /// 1 when the segment travels client → server.
    pub from_client: u8,
    /// Padding, always 0.
    pub _pad: u32,
    /// The first `captured_len` bytes of the segment's TCP payload; the rest is whatever
    /// the ring held before and must not be read.
    pub payload: [u8; L7_MAX_CAPTURE],
}

/// Key of the connection map of `--l7-detect`: both ends of a TCP connection in a fixed
/// order (side `a` is the lower port, or the lower address on equal ports), so the two
/// directions of one connection find one entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct L7ConnKey {
    /// Address of side `a`, laid out as `FlowKey::src_addr` (network byte order).
    pub a_addr: [u8; 16],
    /// Address of side `b`, laid out as `a_addr`.
    pub b_addr: [u8; 16],
    /// Port of side `a` in host byte order; not above `b_port`.
    pub a_port: u16,
    /// Port of side `b` in host byte order.
    pub b_port: u16,
    /// Padding, always 0 so that both directions produce the same key bytes.
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
    /// Padding, always 0.
    pub _pad: u16,
}

/// Drop reports per flow are rate-limited; this is the per-flow state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropState {
    /// `bpf_ktime_get_boot_ns()` of the flow's last drop report; the next one waits until
    /// `setting::DROP_REPORT_INTERVAL_NS` has passed since.
    pub last_report_ns: u64,
    /// Drops of the flow withheld since that report; the next report carries them in
    /// `FlowEvent::packets` (plus itself) and resets this to 0.
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
    // SAFETY: as above (ring records: their sizes, asserted below, are the sums of their
    // fields).
    unsafe impl aya::Pod for super::DnsEvent {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::L7Event {}
}

/// The bytes of a record as a program writes it into a map or the ring buffer, for
/// tests and benches that feed the agent's decoder without a kernel.
#[cfg(feature = "user")]
pub fn record_bytes<T: aya::Pod>(record: &T) -> &[u8] {
    // SAFETY: `Pod` types are plain data without implicit padding, so every one of the
    // `size_of::<T>()` bytes behind the reference is initialised, for as long as it lives.
    unsafe { core::slice::from_raw_parts((record as *const T).cast::<u8>(), core::mem::size_of::<T>()) }
}

const _: () = assert!(core::mem::size_of::<FlowKey>() == 48);
const _: () = assert!(core::mem::size_of::<FlowEvent>() == 112);
const _: () = assert!(core::mem::size_of::<DnsEvent>() == 112 + DNS_MAX_LEN);
const _: () = assert!(core::mem::size_of::<L7Event>() == 112 + 16 + L7_MAX_CAPTURE);
const _: () = assert!(core::mem::size_of::<L7ConnKey>() == 40);
const _: () = assert!(core::mem::size_of::<L7ConnState>() == 4);
