//! `tp_btf/kfree_skb`: packets the kernel dropped, reported as flows with the kernel's
//! drop reason. The `sk_buff` layout is not known at compile time; the agent reads the
//! field offsets from the running kernel's BTF and sets them in `SKB_OFFSETS`.

use aya_ebpf::{
    Global,
    helpers::{bpf_probe_read_kernel, generated::bpf_ktime_get_boot_ns},
    macros::{btf_tracepoint, map},
    maps::{HashMap, LruHashMap},
    programs::BtfTracePointContext,
};
use sightline_bpf_common::{DropState, FlowEvent, FlowKey, config, config::SkbOffsets, config::drop_mode, config::setting, hook, kind, stats};

use crate::{
    flow::{SEEN_TUPLES, count, emit_event, fill_event, setting_value},
    parse::{Packet, Parsed, parse_ipv4, parse_ipv6},
};

#[unsafe(no_mangle)]
static SKB_OFFSETS: Global<SkbOffsets> = Global::new(SkbOffsets {
    head: 0,
    len: 0,
    network_header: 0,
    transport_header: 0,
    dev: 0,
    net_device_ifindex: 0,
    protocol: 0,
    net_device_nd_net: 0,
    net_ns_inum: 0,
    _pad: 0,
});

#[map]
static WATCHED_NETNS: HashMap<u32, u8> = HashMap::with_max_entries(config::WATCHED_NETNS_MAX, 0);

#[map]
static DROPS: LruHashMap<FlowKey, DropState> = LruHashMap::with_max_entries(16384, 0);

/// `SKB_NOT_DROPPED_YET` and `SKB_CONSUMED` open the enum on every kernel that has it.
const FIRST_DROP_REASON: u32 = 2;
const HEADER_UNSET: u16 = 0xffff;

struct KernelPacket {
    base: *const u8,
}

impl Packet for KernelPacket {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        // SAFETY: bpf_probe_read_kernel checks the address itself and fails instead of
        // faulting; the value is copied out, never referenced in place.
        unsafe { bpf_probe_read_kernel(self.base.wrapping_add(offset & 0xfff) as *const T).ok() }
    }
}

#[btf_tracepoint(function = "kfree_skb")]
pub fn sightline_kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let _ = try_kfree_skb(&ctx);
    0
}

#[inline(always)]
unsafe fn read_at<T: Copy>(base: *const u8, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address itself and fails instead of faulting.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize) as *const T).ok() }
}

/// Whether the device the packet was dropped on lives in a namespace this agent
/// watches. Drops without a device cannot be placed and are kept.
#[inline(always)]
fn in_watched_namespace(dev: *const u8, offsets: &SkbOffsets) -> bool {
    if offsets.net_ns_inum == 0 {
        return true;
    }
    // SAFETY: `read_at` is a checked kernel read (see there).
    let Some(net) = (unsafe { read_at::<*const u8>(dev, offsets.net_device_nd_net) }) else {
        return true;
    };
    if net.is_null() {
        return true;
    }
    // SAFETY: as above.
    let Some(inum) = (unsafe { read_at::<u32>(net, offsets.net_ns_inum) }) else {
        return true;
    };
    // SAFETY: only the presence of the entry is used, not a reference into the map.
    unsafe { WATCHED_NETNS.get(inum) }.is_some()
}

fn try_kfree_skb(ctx: &BtfTracePointContext) -> Option<()> {
    let mode = setting_value(setting::DROP_MODE, drop_mode::OFF as u64) as u32;
    let offsets = SKB_OFFSETS.load();
    if mode == drop_mode::OFF || offsets.head == 0 {
        return None;
    }
    let skb: *const u8 = ctx.arg(0);
    let reason: u32 = ctx.arg(2);
    if reason < FIRST_DROP_REASON {
        return None;
    }
    // SAFETY: `read_at` is a checked kernel read; the offsets (for these reads) come from
    // the running kernel's BTF.
    let head: *const u8 = unsafe { read_at(skb, offsets.head)? };
    // SAFETY: as above.
    let network_header: u16 = unsafe { read_at(skb, offsets.network_header)? };
    if head.is_null() || network_header == HEADER_UNSET {
        return None;
    }
    // SAFETY: as above.
    let len: u32 = unsafe { read_at(skb, offsets.len)? };
    // SAFETY: as above.
    let dev: *const u8 = unsafe { read_at(skb, offsets.dev)? };
    let ifindex: u32 = if dev.is_null() {
        0
    } else {
        if !in_watched_namespace(dev, &offsets) {
            return None;
        }
        // SAFETY: as above.
        unsafe { read_at(dev, offsets.net_device_ifindex)? }
    };
    let pkt = KernelPacket {
        base: head.wrapping_add(network_header as usize),
    };
    let version: u8 = pkt.read::<u8>(0)? >> 4;
    let mut slot = core::mem::MaybeUninit::uninit();
    let parsed = Parsed::zero(&mut slot);
    let result = match version {
        4 => parse_ipv4(&pkt, 0, parsed),
        6 => parse_ipv6(&pkt, 0, parsed),
        _ => return None,
    };
    if let Err(why) = result
        && why != stats::FRAGMENT
        && why != stats::OTHER_L4
    {
        return None;
    }
    if mode == drop_mode::OBSERVED {
        let mut tuple = parsed.key;
        tuple.ifindex = 0;
        tuple.hook = 0;
        // SAFETY: only the presence of the entry is used.
        unsafe { SEEN_TUPLES.get(tuple)? };
    }
    count(stats::DROPS_SEEN);
    parsed.key.ifindex = ifindex;
    parsed.key.hook = hook::KFREE_SKB;
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let drops = rate_limit(&parsed.key, now)?;
    let mut event = FlowEvent::default();
    fill_event(&mut event, parsed, now, len);
    event.kind = kind::DROP;
    event.reason = reason;
    event.packets = drops;
    emit_event(&event);
    Some(())
}

/// Returns the number of drops this report stands for, or `None` while the flow's
/// report is withheld.
#[inline(always)]
fn rate_limit(key: &FlowKey, now: u64) -> Option<u64> {
    let interval = setting_value(setting::DROP_REPORT_INTERVAL_NS, 1_000_000_000);
    match DROPS.get_ptr_mut(key) {
        Some(state) => {
            // SAFETY: a pointer into the map's value from the lookup just made, valid
            // for this program run; a race with another CPU only miscounts suppressions.
            let state = unsafe { &mut *state };
            if now.wrapping_sub(state.last_report_ns) < interval {
                state.suppressed += 1;
                count(stats::DROPS_SUPPRESSED);
                return None;
            }
            let drops = state.suppressed + 1;
            state.suppressed = 0;
            state.last_report_ns = now;
            Some(drops)
        }
        None => {
            let state = DropState {
                last_report_ns: now,
                suppressed: 0,
            };
            let _ = DROPS.insert(key, state, 0);
            Some(1)
        }
    }
}
