//! Header parsing shared by every hook: Ethernet, VLAN, IPv4/IPv6, TCP/UDP/SCTP/ICMP.
//! Reads go through `Packet`, so the same code serves skbs (helper loads), XDP (direct
//! access) and freed skbs (kernel reads). The parser never writes.

use sightline_bpf_common::{FlowKey, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, stats};

pub trait Packet {
    fn read<T: Copy>(&self, offset: usize) -> Option<T>;
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const MAX_VLAN_TAGS: usize = 2;
const MAX_IPV6_EXT: usize = 6;

/// What the parser learned about one packet.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Parsed {
    pub key: FlowKey,
    pub tcp_flags: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// Offset of the L4 payload (DNS message), 0 when there is none.
    pub payload_offset: u32,
    /// Offset just past the IP packet (its total length), 0 when the header gives none
    /// (BIG TCP): link-layer padding is not payload.
    pub ip_end: u32,
    /// TCP: sequence number of the first payload byte.
    pub tcp_seq: u32,
}

impl Parsed {
    /// Zeroes `slot` in place, word by word with volatile stores. A plain zeroing
    /// (as `Default` does), or returning a zeroed value, is turned by LLVM into a
    /// `memset` call, which bpf-linker expands into a byte loop: 68 iterations,
    /// about half of a packet's cost.
    #[inline(always)]
    pub fn zero(slot: &mut core::mem::MaybeUninit<Parsed>) -> &mut Parsed {
        const WORDS: usize = core::mem::size_of::<Parsed>() / 4;
        let words = slot.as_mut_ptr().cast::<u32>();
        for i in 0..WORDS {
            // SAFETY: `Parsed` is repr(C), 4-byte aligned, a multiple of 4 bytes long
            // and valid when all zero; every word is written before it is read.
            unsafe { words.add(i).write_volatile(0) };
        }
        // SAFETY: every byte was written above.
        unsafe { slot.assume_init_mut() }
    }
}

/// Why a packet could not be parsed: the `stats::*` counter to bump.
pub type Unparsed = u32;

#[inline(always)]
pub fn parse_ethernet<P: Packet>(pkt: &P, out: &mut Parsed) -> Result<(), Unparsed> {
    // The MAC addresses are read only when an event is emitted (`flow::read_macs`).
    let ethertype: [u8; 2] = pkt.read(12).ok_or(stats::TRUNCATED)?;
    let mut ethertype = u16::from_be_bytes(ethertype);
    let mut offset = 14usize;
    for _ in 0..MAX_VLAN_TAGS {
        if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
            break;
        }
        let tag: [u8; 4] = pkt.read(offset).ok_or(stats::TRUNCATED)?;
        ethertype = u16::from_be_bytes([tag[2], tag[3]]);
        offset += 4;
    }
    match ethertype {
        ETH_P_IP => parse_ipv4(pkt, offset, out),
        ETH_P_IPV6 => parse_ipv6(pkt, offset, out),
        _ => Err(stats::NOT_IP),
    }
}

#[inline(always)]
pub fn parse_ipv4<P: Packet>(pkt: &P, offset: usize, out: &mut Parsed) -> Result<(), Unparsed> {
    let ip: [u8; 20] = pkt.read(offset).ok_or(stats::TRUNCATED)?;
    if ip[0] >> 4 != 4 {
        return Err(stats::NOT_IP);
    }
    let header_len = ((ip[0] & 0x0f) as usize) * 4;
    if header_len < 20 {
        return Err(stats::TRUNCATED);
    }
    out.key.ip_version = 4;
    out.key.protocol = ip[9];
    out.key.src_addr[..4].copy_from_slice(&ip[12..16]);
    out.key.dst_addr[..4].copy_from_slice(&ip[16..20]);
    let total_len = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if total_len != 0 {
        out.ip_end = (offset + total_len) as u32;
    }
    let fragment_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    if fragment_offset != 0 {
        return Err(stats::FRAGMENT);
    }
    parse_l4(pkt, offset + header_len, out)
}

#[inline(always)]
pub fn parse_ipv6<P: Packet>(pkt: &P, offset: usize, out: &mut Parsed) -> Result<(), Unparsed> {
    let ip: [u8; 40] = pkt.read(offset).ok_or(stats::TRUNCATED)?;
    if ip[0] >> 4 != 6 {
        return Err(stats::NOT_IP);
    }
    out.key.ip_version = 6;
    out.key.src_addr.copy_from_slice(&ip[8..24]);
    out.key.dst_addr.copy_from_slice(&ip[24..40]);
    let payload_len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
    if payload_len != 0 {
        out.ip_end = (offset + 40 + payload_len) as u32;
    }
    let mut next = ip[6];
    let mut offset = offset + 40;
    for _ in 0..MAX_IPV6_EXT {
        match next {
            // Hop-by-hop, routing, destination options: length in 8-octet units, not counting the first.
            0 | 43 | 60 => {
                let ext: [u8; 2] = pkt.read(offset).ok_or(stats::TRUNCATED)?;
                next = ext[0];
                offset += (ext[1] as usize + 1) * 8;
            }
            // Fragment header: fixed 8 bytes; only the first fragment carries the L4 header.
            44 => {
                let frag: [u8; 4] = pkt.read(offset).ok_or(stats::TRUNCATED)?;
                next = frag[0];
                offset += 8;
                if u16::from_be_bytes([frag[2], frag[3]]) & 0xfff8 != 0 {
                    out.key.protocol = next;
                    return Err(stats::FRAGMENT);
                }
            }
            // Authentication header: length in 4-octet units, minus 2.
            51 => {
                let ext: [u8; 2] = pkt.read(offset).ok_or(stats::TRUNCATED)?;
                next = ext[0];
                offset += (ext[1] as usize + 2) * 4;
            }
            _ => {
                out.key.protocol = next;
                return parse_l4(pkt, offset, out);
            }
        }
    }
    Err(stats::IPV6_EXT_TOO_DEEP)
}

#[inline(always)]
fn parse_l4<P: Packet>(pkt: &P, offset: usize, out: &mut Parsed) -> Result<(), Unparsed> {
    match out.key.protocol {
        IPPROTO_TCP => {
            let tcp: [u8; 14] = pkt.read(offset).ok_or(stats::TRUNCATED)?;
            out.key.src_port = u16::from_be_bytes([tcp[0], tcp[1]]);
            out.key.dst_port = u16::from_be_bytes([tcp[2], tcp[3]]);
            out.tcp_flags = (tcp[13] as u16) | (((tcp[12] & 1) as u16) << 8);
            out.tcp_seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
            out.payload_offset = (offset + ((tcp[12] >> 4) as usize) * 4) as u32;
        }
        IPPROTO_UDP | IPPROTO_SCTP => {
            let ports: [u8; 4] = pkt.read(offset).ok_or(stats::TRUNCATED)?;
            out.key.src_port = u16::from_be_bytes([ports[0], ports[1]]);
            out.key.dst_port = u16::from_be_bytes([ports[2], ports[3]]);
            // UDP's header is 8 bytes; SCTP payload is chunked and never carries DNS here.
            out.payload_offset = (offset + 8) as u32;
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let icmp: [u8; 8] = pkt.read(offset).ok_or(stats::TRUNCATED)?;
            out.icmp_type = icmp[0];
            out.icmp_code = icmp[1];
            if is_echo(out.key.protocol, icmp[0]) {
                let id = u16::from_be_bytes([icmp[4], icmp[5]]);
                out.key.src_port = id;
                out.key.dst_port = id;
            }
        }
        _ => return Err(stats::OTHER_L4),
    }
    Ok(())
}

#[inline(always)]
fn is_echo(protocol: u8, icmp_type: u8) -> bool {
    match protocol {
        IPPROTO_ICMP => icmp_type == 8 || icmp_type == 0,
        _ => icmp_type == 128 || icmp_type == 129,
    }
}
