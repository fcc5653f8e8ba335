//! In-kernel aggregation: per-flow counters in an LRU map, and the rules that decide
//! when a packet is worth a ring-buffer event.

use aya_ebpf::{
    Global,
    bindings::{BPF_NOEXIST, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::generated::{bpf_ktime_get_boot_ns, bpf_ktime_get_coarse_ns},
    macros::map,
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
};
use sightline_bpf_common::{
    DNS_MAX_LEN, DNS_PORT, DnsEvent, FlowEvent, FlowKey, FlowStats, IPPROTO_TCP, IPPROTO_UDP, config::aggregation, config::setting,
    kind, report, stats, tcp_flags,
};

use crate::l7::{self, L7PayloadSource};
use crate::parse::{Packet, Parsed, parse_ethernet};

/// Force a reader wakeup every this many events; the others are submitted without one
/// and the agent's drain timer picks them up. 1 wakes the reader on every event.
#[unsafe(no_mangle)]
static WAKEUP_EVERY: Global<u32> = Global::new(64);

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);
#[map]
static FLOWS: LruHashMap<FlowKey, FlowStats> = LruHashMap::with_max_entries(65536, 0);
/// 5-tuples (ifindex and hook zeroed) the classifiers have seen, for `drop_mode::OBSERVED`.
#[map]
pub static SEEN_TUPLES: LruHashMap<FlowKey, u8> = LruHashMap::with_max_entries(65536, 0);
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stats::COUNT, 0);
#[map]
static SETTINGS: Array<u64> = Array::with_max_entries(setting::COUNT, 0);
#[map]
static WAKEUP_COUNTER: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// Copies a packet's L4 payload (for DNS) into an event.
pub trait PayloadSource {
    fn copy_payload(&self, offset: u32, dst: &mut [u8; DNS_MAX_LEN]) -> u16;
}

#[inline(always)]
pub fn count(index: u32) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // SAFETY: a valid per-CPU array slot; programs do not migrate CPUs while
        // running, so no other writer touches it meanwhile.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
pub fn observe<P: Packet + PayloadSource + L7PayloadSource>(pkt: &P, hook: u8, ifindex: u32, len: u32) {
    count(stats::PACKETS);
    let mut slot = core::mem::MaybeUninit::uninit();
    let parsed = Parsed::zero(&mut slot);
    if let Err(why) = parse_ethernet(pkt, parsed) {
        count(why);
        // Fragments and unknown transports still make a flow (without ports); the rest cannot.
        if why != stats::FRAGMENT && why != stats::OTHER_L4 {
            return;
        }
        parsed.payload_offset = 0;
    }
    parsed.key.ifindex = ifindex;
    parsed.key.hook = hook;
    aggregate(pkt, parsed, len);
    if is_dns(parsed) {
        emit_dns(pkt, parsed, len);
    } else if parsed.key.protocol == IPPROTO_TCP && hook != sightline_bpf_common::hook::XDP {
        l7::observe(pkt, parsed, len);
    }
}

/// Event timestamps use the boot clock, which the agent converts to wall time.
#[inline(always)]
pub fn event_time() -> u64 {
    // SAFETY: a helper without arguments or side effects.
    unsafe { bpf_ktime_get_boot_ns() }
}

/// Report intervals are measured on the coarse monotonic clock, read from the
/// last tick without touching the clocksource: a few ns against ~20 for
/// `bpf_ktime_get_boot_ns`, on every packet. A tick (1–4 ms) of error does not
/// matter against a 5 s interval. Stored `*_ns` fields of `FlowStats` use it.
/// A live setting; `default` only if the map lookup fails, which it cannot for an
/// index below `setting::COUNT`.
#[inline(always)]
pub fn setting_value(index: u32, default: u64) -> u64 {
    SETTINGS.get(index).copied().unwrap_or(default)
}

#[inline(always)]
fn interval_clock() -> u64 {
    // SAFETY: a helper without arguments or side effects.
    unsafe { bpf_ktime_get_coarse_ns() }
}

#[inline(always)]
fn aggregate<P: Packet>(pkt: &P, parsed: &Parsed, len: u32) {
    let key = &parsed.key;
    let flags = parsed.tcp_flags as u32;
    let level = setting_value(setting::AGGREGATION_LEVEL, aggregation::MEDIUM as u64) as u32;
    let now = interval_clock();
    let Some(stats_ptr) = FLOWS.get_ptr_mut(key) else {
        let fresh = FlowStats {
            first_seen_ns: now,
            last_report_ns: now,
            packets: 1,
            bytes: len as u64,
            tcp_flags: flags,
            _pad: 0,
        };
        if FLOWS.insert(key, fresh, BPF_NOEXIST as u64).is_err() {
            count(stats::FLOW_MAP_FULL);
        }
        remember_tuple(key);
        let reason = if level == aggregation::NONE {
            report::NEW_FLOW | report::EVERY_PACKET
        } else {
            report::NEW_FLOW
        };
        emit_trace(pkt, parsed, len, &fresh, reason);
        return;
    };
    // SAFETY: a pointer into the map's value that the lookup just returned; it stays
    // valid for this program run. Concurrent updates from other CPUs are benign races
    // on plain counters (see below).
    let stats = unsafe { &mut *stats_ptr };
    // Plain adds, not BPF_XADD: a locked add on every packet costs more than the
    // rare count two CPUs updating one flow at once may lose. The totals travel in
    // events only as context; no reported field depends on them being exact.
    stats.packets += 1;
    stats.bytes += len as u64;
    // Racy read-modify-write: a concurrent CPU may lose a bit, which only costs a report.
    let old_flags = stats.tcp_flags;
    let new_bits = flags & !old_flags;
    if new_bits != 0 {
        stats.tcp_flags = old_flags | flags;
    }
    let significant = (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) as u32;
    let mut reason = 0;
    match level {
        aggregation::NONE => reason |= report::EVERY_PACKET,
        aggregation::LOW => {
            if new_bits != 0 {
                reason |= report::TCP_FLAGS;
            }
        }
        _ => {
            if new_bits & significant != 0 {
                reason |= report::TCP_FLAGS;
            }
        }
    }
    if level != aggregation::MAXIMUM && now.wrapping_sub(stats.last_report_ns) >= setting_value(setting::REPORT_INTERVAL_NS, 5_000_000_000) {
        reason |= report::INTERVAL;
    }
    if reason != 0 {
        stats.last_report_ns = now;
        let snapshot = *stats;
        emit_trace(pkt, parsed, len, &snapshot, reason);
    }
}

#[inline(always)]
fn remember_tuple(key: &FlowKey) {
    let mut tuple = *key;
    tuple.ifindex = 0;
    tuple.hook = 0;
    let _ = SEEN_TUPLES.insert(tuple, 1u8, 0);
}

/// Fills everything but the MAC addresses (see `read_macs`).
#[inline(always)]
pub fn fill_event(event: &mut FlowEvent, parsed: &Parsed, now: u64, len: u32) {
    event.kind = kind::TRACE;
    event.reason = 0;
    event.timestamp_ns = now;
    event.key = parsed.key;
    event.packets = 1;
    event.bytes = len as u64;
    event.packet_len = len;
    event.tcp_flags = parsed.tcp_flags;
    event.flow_tcp_flags = parsed.tcp_flags;
    event.icmp_type = parsed.icmp_type;
    event.icmp_code = parsed.icmp_code;
    event.dns_len = 0;
    event._pad = 0;
}

#[inline(always)]
fn emit_trace<P: Packet>(pkt: &P, parsed: &Parsed, len: u32, stats: &FlowStats, reason: u32) {
    let Some(mut entry) = EVENTS.reserve::<FlowEvent>(0) else {
        count(stats::RINGBUF_LOST);
        return;
    };
    // SAFETY: the reservation is ours alone until it is submitted or discarded, and
    // sized for one event; every field is written before submission.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    fill_event(event, parsed, event_time(), len);
    read_macs(pkt, event);
    event.reason = reason;
    event.packets = stats.packets;
    event.bytes = stats.bytes;
    event.flow_tcp_flags = stats.tcp_flags as u16;
    entry.submit(submit_flags());
}

/// Emits a filled event, counting a lost one when the ring is full.
#[inline(always)]
pub fn emit_event(event: &FlowEvent) {
    if EVENTS.output::<FlowEvent>(event, submit_flags()).is_err() {
        count(stats::RINGBUF_LOST);
    }
}

/// Destination and source MAC of a frame the classifiers or XDP saw, read here
/// rather than in the parser because most packets emit nothing.
#[inline(always)]
pub fn read_macs<P: Packet>(pkt: &P, event: &mut FlowEvent) {
    let macs = pkt.read::<[u8; 12]>(0).unwrap_or([0; 12]);
    event.eth_dst.copy_from_slice(&macs[0..6]);
    event.eth_src.copy_from_slice(&macs[6..12]);
}

#[inline(always)]
fn is_dns(parsed: &Parsed) -> bool {
    let key = &parsed.key;
    (key.protocol == IPPROTO_UDP || key.protocol == IPPROTO_TCP)
        && (key.src_port == DNS_PORT || key.dst_port == DNS_PORT)
        && parsed.payload_offset != 0
}

#[inline(always)]
fn emit_dns<P: Packet + PayloadSource>(pkt: &P, parsed: &Parsed, len: u32) {
    // DNS over TCP prefixes each message with its 2-byte length; the prefixes are
    // copied too, so the agent can find every message of the segment.
    let offset = parsed.payload_offset;
    if offset >= len {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<DnsEvent>(0) else {
        count(stats::RINGBUF_LOST);
        return;
    };
    // SAFETY: the reservation is ours alone until it is submitted or discarded, and
    // sized for one event; every field is written before submission.
    let event = unsafe { &mut *entry.as_mut_ptr() };
    let copied = pkt.copy_payload(offset, &mut event.payload);
    if copied == 0 {
        entry.discard(BPF_RB_NO_WAKEUP as u64);
        return;
    }
    fill_event(&mut event.flow, parsed, event_time(), len);
    read_macs(pkt, &mut event.flow);
    event.flow.kind = kind::DNS;
    event.flow.dns_len = copied;
    // A DNS answer is awaited by someone: wake the reader now.
    entry.submit(BPF_RB_FORCE_WAKEUP as u64);
}

#[inline(always)]
pub fn submit_flags() -> u64 {
    let every = WAKEUP_EVERY.load();
    if every <= 1 {
        return 0;
    }
    let Some(counter) = WAKEUP_COUNTER.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a valid per-CPU array slot, written only by this CPU.
    let counter = unsafe { &mut *counter };
    *counter += 1;
    if *counter >= every {
        *counter = 0;
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}
