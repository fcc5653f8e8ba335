//! L7 capture: copies the first bytes of TCP payload on connections selected for L7
//! parsing into the ring, for the agent's HTTP/1, HTTP/2 and Kafka parsers.
//!
//! A connection is selected by its server port (`L7_PORTS`, an array map the verifier
//! turns into a plain memory load) or, with `--l7-detect`, by the content of its first
//! payload: the SYN puts the connection into `L7_CONNECTIONS` as pending, and the first
//! payload decides. Connections neither selects cost at most one hash lookup per
//! payload segment and never a copy.
//!
//! Each segment is captured once per node, at the client pod's veth (requests leaving
//! it, responses entering it), as DNS is: two pods of one node would otherwise give
//! every segment twice.

use aya_ebpf::{
    Global,
    bindings::{BPF_NOEXIST, BPF_RB_NO_WAKEUP},
    macros::map,
    maps::{Array, LruHashMap},
};
use sightline_bpf_common::{
    L7_DEFAULT_CAPTURE, L7_MAX_CAPTURE, L7_PORT_ENTRIES, L7ConnKey, L7ConnState, L7Event, config::L7_CONNECTIONS_MAX,
    hook, kind, l7_protocol, stats, tcp_flags,
};

use crate::flow::{count, event_time, fill_event, read_macs, submit_flags};
use crate::parse::{Packet, Parsed};

#[unsafe(no_mangle)]
static L7_CAPTURE_BYTES: Global<u32> = Global::new(L7_DEFAULT_CAPTURE);
#[unsafe(no_mangle)]
static L7_DETECT: Global<u32> = Global::new(0);
#[unsafe(no_mangle)]
static L7_PORTS_ENABLED: Global<u32> = Global::new(0);

#[map]
static L7_PORTS: Array<u8> = Array::with_max_entries(L7_PORT_ENTRIES, 0);
#[map]
static L7_CONNECTIONS: LruHashMap<L7ConnKey, L7ConnState> = LruHashMap::with_max_entries(L7_CONNECTIONS_MAX, 0);

/// Copies up to `limit` payload bytes into an L7 event.
pub trait L7PayloadSource {
    fn copy_l7(&self, offset: u32, limit: u32, dst: &mut [u8; L7_MAX_CAPTURE]) -> u16;
}

/// Called for every TCP packet at the TC hooks.
#[inline(always)]
pub fn observe<P: Packet + L7PayloadSource>(pkt: &P, parsed: &Parsed, len: u32) {
    let detect = L7_DETECT.load() != 0;
    let ports = L7_PORTS_ENABLED.load() != 0;
    if !detect && !ports {
        return;
    }
    let start = parsed.payload_offset;
    if start == 0 {
        return;
    }
    let end = if parsed.ip_end != 0 && parsed.ip_end < len {
        parsed.ip_end
    } else {
        len
    };
    let payload_len = end.saturating_sub(start);
    let flags = parsed.tcp_flags;
    let ends = flags & (tcp_flags::FIN | tcp_flags::RST) != 0;
    if payload_len == 0 && !ends {
        if detect && flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN {
            remember_opening(parsed, ports);
        }
        return;
    }
    let Some((protocol, from_client)) = select(pkt, parsed, ports, detect, payload_len) else {
        return;
    };
    // The client pod's veth: requests leave the pod (TC ingress), responses enter it (TC egress).
    let here = if from_client { hook::TC_INGRESS } else { hook::TC_EGRESS };
    if parsed.key.hook != here {
        return;
    }
    emit(pkt, parsed, len, start, payload_len, protocol, from_client);
}

#[inline(always)]
fn port_protocol(port: u16) -> u8 {
    L7_PORTS.get(port as u32).copied().unwrap_or(l7_protocol::NONE)
}

/// The protocol of the connection and whether this segment travels client → server.
#[inline(always)]
fn select<P: Packet>(pkt: &P, parsed: &Parsed, ports: bool, detect: bool, payload_len: u32) -> Option<(u8, bool)> {
    if ports {
        let server = port_protocol(parsed.key.dst_port);
        if server != l7_protocol::NONE {
            return Some((server, true));
        }
        let server = port_protocol(parsed.key.src_port);
        if server != l7_protocol::NONE {
            return Some((server, false));
        }
    }
    if !detect {
        return None;
    }
    let (key, src_is_a) = connection_key(parsed);
    let state_ptr = L7_CONNECTIONS.get_ptr_mut(key)?;
    // SAFETY: a pointer into the map value the lookup just returned, valid for this run;
    // two CPUs deciding the same connection at once write the same answer.
    let state = unsafe { &mut *state_ptr };
    if state.protocol == l7_protocol::PENDING {
        if payload_len == 0 {
            return None;
        }
        let found = detect_protocol(pkt, parsed.payload_offset as usize);
        state.protocol = found;
        if found == l7_protocol::NONE {
            count(stats::L7_NOT_DETECTED);
        }
    }
    if state.protocol == l7_protocol::NONE {
        return None;
    }
    Some((state.protocol, (state.client_is_a != 0) == src_is_a))
}

/// A SYN on a port no protocol is configured for: follow the connection until its first payload.
#[inline(always)]
fn remember_opening(parsed: &Parsed, ports: bool) {
    if ports
        && (port_protocol(parsed.key.dst_port) != l7_protocol::NONE
            || port_protocol(parsed.key.src_port) != l7_protocol::NONE)
    {
        return;
    }
    let (key, src_is_a) = connection_key(parsed);
    let state = L7ConnState {
        protocol: l7_protocol::PENDING,
        client_is_a: src_is_a as u8,
        _pad: 0,
    };
    // The SYN is seen at up to two veths of a node; the first insert stands.
    let _ = L7_CONNECTIONS.insert(key, state, BPF_NOEXIST as u64);
}

/// Orders the two ends by port, then by address, so both directions share one key.
#[inline(always)]
fn connection_key(parsed: &Parsed) -> (L7ConnKey, bool) {
    let flow = &parsed.key;
    let src_is_a = if flow.src_port != flow.dst_port {
        flow.src_port < flow.dst_port
    } else {
        address_le(&flow.src_addr, &flow.dst_addr)
    };
    let (a_addr, a_port, b_addr, b_port) = if src_is_a {
        (flow.src_addr, flow.src_port, flow.dst_addr, flow.dst_port)
    } else {
        (flow.dst_addr, flow.dst_port, flow.src_addr, flow.src_port)
    };
    let key = L7ConnKey {
        a_addr,
        b_addr,
        a_port,
        b_port,
        _pad: 0,
    };
    (key, src_is_a)
}

#[inline(always)]
fn address_le(left: &[u8; 16], right: &[u8; 16]) -> bool {
    for word in 0..4 {
        let at = word * 4;
        let l = u32::from_be_bytes([left[at], left[at + 1], left[at + 2], left[at + 3]]);
        let r = u32::from_be_bytes([right[at], right[at + 1], right[at + 2], right[at + 3]]);
        if l != r {
            return l < r;
        }
    }
    true
}

/// Does the first payload look like an HTTP/1 request line, the HTTP/2 preface, or a
/// Kafka request header? A cheap prefilter: the agent's parsers look again.
#[inline(always)]
fn detect_protocol<P: Packet>(pkt: &P, offset: usize) -> u8 {
    let Some(head) = pkt.read::<[u8; 14]>(offset) else {
        // Shorter than any request we recognise.
        return l7_protocol::NONE;
    };
    let word = [head[0], head[1], head[2], head[3]];
    match &word {
        b"PRI " => return l7_protocol::HTTP2,
        b"GET " | b"PUT " | b"POST" | b"HEAD" | b"DELE" | b"PATC" | b"OPTI" | b"CONN" | b"TRAC" => {
            return l7_protocol::HTTP1;
        }
        _ => {}
    }
    // Kafka: int32 size, int16 api_key, int16 api_version, int32 correlation_id,
    // int16 client_id length (-1 for null).
    let size = u32::from_be_bytes(word);
    let api_key = u16::from_be_bytes([head[4], head[5]]);
    let api_version = u16::from_be_bytes([head[6], head[7]]);
    let client_id_len = u16::from_be_bytes([head[12], head[13]]);
    let plausible = (10..(1 << 26)).contains(&size)
        && api_key <= 100
        && api_version <= 30
        && (client_id_len == 0xffff || (client_id_len as u32) + 10 <= size);
    if plausible {
        l7_protocol::KAFKA
    } else {
        l7_protocol::NONE
    }
}

#[inline(always)]
fn emit<P: Packet + L7PayloadSource>(
    pkt: &P,
    parsed: &Parsed,
    len: u32,
    start: u32,
    payload_len: u32,
    protocol: u8,
    from_client: bool,
) {
    let Some(mut entry) = crate::flow::EVENTS.reserve::<L7Event>(0) else {
        count(stats::RINGBUF_LOST);
        return;
    };
    // SAFETY: the reservation is ours alone until it is submitted or discarded, and
    // sized for one event; every header field is written before submission, and the
    // agent reads only `captured_len` bytes of the payload.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    let mut captured = 0;
    if payload_len != 0 {
        let limit = if payload_len < L7_CAPTURE_BYTES.load() {
            payload_len
        } else {
            L7_CAPTURE_BYTES.load()
        };
        captured = pkt.copy_l7(start, limit, &mut event.payload);
        if captured == 0 {
            count(stats::L7_COPY_FAILED);
            entry.discard(BPF_RB_NO_WAKEUP as u64);
            return;
        }
    }
    fill_event(&mut event.flow, parsed, event_time(), len);
    read_macs(pkt, &mut event.flow);
    event.flow.kind = kind::L7;
    event.tcp_seq = parsed.tcp_seq;
    event.payload_len = payload_len;
    event.captured_len = captured;
    event.protocol = protocol;
    event.from_client = from_client as u8;
    event._pad = 0;
    count(stats::L7_CAPTURED);
    // Batched wakeups as for traces: a bulk transfer on a selected connection gives an
    // event per segment, and a wakeup each would cost the sender throughput.
    entry.submit(submit_flags());
}
