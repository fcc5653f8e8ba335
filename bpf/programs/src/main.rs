//! Sightline's eBPF programs. They observe only: no program writes to a packet, and
//! every one returns "pass" whatever it finds.

#![no_std]
#![no_main]

mod flow;
mod kfree;
mod l7;
mod parse;

use aya_ebpf::{
    bindings::{TC_ACT_UNSPEC, xdp_action::XDP_PASS},
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use sightline_bpf_common::hook;

use crate::parse::Packet;

#[classifier]
pub fn sightline_tc_ingress(ctx: TcContext) -> i32 {
    let len = ctx.len();
    flow::observe(&SkbPacket(&ctx), hook::TC_INGRESS, ifindex(&ctx), len);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn sightline_tc_egress(ctx: TcContext) -> i32 {
    let len = ctx.len();
    flow::observe(&SkbPacket(&ctx), hook::TC_EGRESS, ifindex(&ctx), len);
    TC_ACT_UNSPEC
}

#[xdp]
pub fn sightline_xdp(ctx: XdpContext) -> u32 {
    // SAFETY: the kernel passes a valid `xdp_md` for the whole program run.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    let len = (ctx.data_end() - ctx.data()) as u32;
    flow::observe(&XdpPacket(&ctx), hook::XDP, ifindex, len);
    XDP_PASS
}

#[inline(always)]
fn ifindex(ctx: &TcContext) -> u32 {
    // SAFETY: the kernel passes a valid `__sk_buff` for the whole program run.
    unsafe { (*ctx.skb.skb).ifindex }
}

/// Reads headers by direct packet access when they lie in the skb's linear area (the
/// common case, and far cheaper than a helper call), else through `bpf_skb_load_bytes`,
/// which also copes with non-linear skbs.
pub struct SkbPacket<'a>(pub &'a TcContext);

impl Packet for SkbPacket<'_> {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let start = self.0.data();
        let end = self.0.data_end();
        // Keeping the offset bounded lets the verifier track the pointer range.
        let bounded = offset & 0xfff;
        if bounded == offset && start + bounded + core::mem::size_of::<T>() <= end {
            // SAFETY: `start + bounded .. + size_of::<T>()` lies inside the linear
            // packet data, checked against `data_end` just above.
            return Some(unsafe { core::ptr::read_unaligned((start + bounded) as *const T) });
        }
        self.0.load::<T>(offset).ok()
    }
}

impl flow::PayloadSource for SkbPacket<'_> {
    #[inline(always)]
    fn copy_payload(&self, offset: u32, dst: &mut [u8; sightline_bpf_common::DNS_MAX_LEN]) -> u16 {
        let total = self.0.len();
        if offset >= total {
            return 0;
        }
        let available = total - offset;
        // The verifier needs the size proven to lie in 1..=512.
        let len = if available > 512 { 512 } else { available };
        let len = ((len - 1) & 0x1ff) + 1;
        // SAFETY: `dst` is a buffer of DNS_MAX_LEN (512) bytes and `len` is at most 512.
        let ret = unsafe {
            aya_ebpf::helpers::generated::bpf_skb_load_bytes(
                self.0.skb.skb.cast(),
                offset,
                dst.as_mut_ptr().cast(),
                len,
            )
        };
        if ret == 0 { len as u16 } else { 0 }
    }
}

impl l7::L7PayloadSource for SkbPacket<'_> {
    #[inline(always)]
    fn copy_l7(&self, offset: u32, limit: u32, dst: &mut [u8; sightline_bpf_common::L7_MAX_CAPTURE]) -> u16 {
        if limit == 0 {
            return 0;
        }
        // The verifier needs the size proven to lie in 1..=1024.
        let len = ((limit - 1) & 0x3ff) + 1;
        // SAFETY: `dst` is a buffer of L7_MAX_CAPTURE (1024) bytes and `len` is at most 1024.
        let ret = unsafe {
            aya_ebpf::helpers::generated::bpf_skb_load_bytes(self.0.skb.skb.cast(), offset, dst.as_mut_ptr().cast(), len)
        };
        if ret == 0 { len as u16 } else { 0 }
    }
}

/// Direct packet access, bounds-checked against `data_end` as the verifier demands.
pub struct XdpPacket<'a>(pub &'a XdpContext);

impl Packet for XdpPacket<'_> {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let start = self.0.data();
        let end = self.0.data_end();
        // Keeping the offset bounded lets the verifier track the pointer range.
        let offset = offset & 0xfff;
        let size = core::mem::size_of::<T>();
        if start + offset + size > end {
            return None;
        }
        // SAFETY: the range was checked against `data_end` just above.
        Some(unsafe { core::ptr::read_unaligned((start + offset) as *const T) })
    }
}

impl flow::PayloadSource for XdpPacket<'_> {
    #[inline(always)]
    fn copy_payload(&self, offset: u32, dst: &mut [u8; sightline_bpf_common::DNS_MAX_LEN]) -> u16 {
        let total = (self.0.data_end() - self.0.data()) as u32;
        if offset >= total {
            return 0;
        }
        let available = total - offset;
        let len = if available > 512 { 512 } else { available };
        let len = ((len - 1) & 0x1ff) + 1;
        // SAFETY: `dst` is a buffer of DNS_MAX_LEN (512) bytes and `len` is at most 512.
        let ret = unsafe {
            aya_ebpf::helpers::generated::bpf_xdp_load_bytes(self.0.ctx, offset, dst.as_mut_ptr().cast(), len)
        };
        if ret == 0 { len as u16 } else { 0 }
    }
}

impl l7::L7PayloadSource for XdpPacket<'_> {
    #[inline(always)]
    fn copy_l7(&self, offset: u32, limit: u32, dst: &mut [u8; sightline_bpf_common::L7_MAX_CAPTURE]) -> u16 {
        if limit == 0 {
            return 0;
        }
        let len = ((limit - 1) & 0x3ff) + 1;
        // SAFETY: `dst` is a buffer of L7_MAX_CAPTURE (1024) bytes and `len` is at most 1024.
        let ret = unsafe {
            aya_ebpf::helpers::generated::bpf_xdp_load_bytes(self.0.ctx, offset, dst.as_mut_ptr().cast(), len)
        };
        if ret == 0 { len as u16 } else { 0 }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
