//! The eBPF programs' header parser, compiled for the host and fed hand-built frames.
//! (The same source runs in the kernel; here reads come from a byte slice.)

#[path = "../../programs/src/parse.rs"]
#[allow(dead_code)]
mod parse;

use parse::{Packet, Parsed, parse_ethernet};
use sightline_bpf_common::{IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, stats, tcp_flags};

struct Bytes(Vec<u8>);

impl Packet for Bytes {
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let bytes = self.0.get(offset..offset + size_of::<T>())?;
        // SAFETY: the slice holds exactly size_of::<T>() bytes; T is a byte array in the parser.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
    }
}

fn ethernet(ethertype: u16) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame
}

fn ipv4(protocol: u8, options: usize) -> Vec<u8> {
    let ihl = 5 + options / 4;
    let mut header = vec![
        0x40 | ihl as u8,
        0,
        0,
        0,
        0,
        0,
        0x40,
        0,
        64,
        protocol,
        0,
        0,
        10,
        0,
        0,
        1,
        10,
        0,
        0,
        2,
    ];
    header.extend(std::iter::repeat_n(1u8, options));
    header
}

fn ipv6(next: u8) -> Vec<u8> {
    let mut header = vec![0x60, 0, 0, 0, 0, 0, next, 64];
    header.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    header.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    header
}

fn tcp(flags: u8) -> Vec<u8> {
    vec![
        0x30, 0x39, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
    ]
}

fn parse(frame: Vec<u8>) -> (Result<(), u32>, Parsed) {
    // Scratch memory that held something else before, as the BPF stack does.
    let mut slot = std::mem::MaybeUninit::<Parsed>::uninit();
    // SAFETY: writes bytes only; `Parsed::zero` initialises them again.
    unsafe { slot.as_mut_ptr().cast::<u8>().write_bytes(0xa5, size_of::<Parsed>()) };
    let parsed = Parsed::zero(&mut slot);
    let result = parse_ethernet(&Bytes(frame), parsed);
    (result, *parsed)
}

#[test]
fn ipv4_with_options_and_tcp() {
    let frame = [ethernet(0x0800), ipv4(IPPROTO_TCP, 8), tcp(0x12)].concat();
    let (result, parsed) = parse(frame);
    assert_eq!(result, Ok(()));
    assert_eq!(parsed.key.ip_version, 4);
    assert_eq!(&parsed.key.src_addr[..4], &[10, 0, 0, 1]);
    assert_eq!((parsed.key.src_port, parsed.key.dst_port), (12345, 80));
    assert_eq!(parsed.tcp_flags, tcp_flags::SYN | tcp_flags::ACK);
    assert_eq!(parsed.payload_offset, 14 + 28 + 20);
    assert_eq!(
        &parsed.key.src_addr[4..],
        &[0; 12],
        "the rest of an IPv4 key stays zero"
    );
    assert_eq!((parsed.key._pad, parsed.key._pad2), (0, 0));
}

#[test]
fn stacked_vlan_tags() {
    let mut frame = ethernet(0x88a8);
    frame.extend_from_slice(&[0, 100, 0x81, 0x00, 0, 200, 0x08, 0x00]);
    frame.extend([ipv4(IPPROTO_UDP, 0), vec![0, 53, 0x30, 0x39, 0, 8, 0, 0]].concat());
    let (result, parsed) = parse(frame);
    assert_eq!(result, Ok(()));
    assert_eq!(
        (parsed.key.protocol, parsed.key.src_port, parsed.key.dst_port),
        (IPPROTO_UDP, 53, 12345)
    );
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    // Hop-by-hop (8 bytes) -> destination options (16 bytes) -> SCTP.
    let hop_by_hop = vec![60, 0, 1, 4, 0, 0, 0, 0];
    let mut dest_opts = vec![IPPROTO_SCTP, 1];
    dest_opts.extend([0u8; 14]);
    let sctp = vec![0x0b, 0xb8, 0x0b, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0];
    let frame = [ethernet(0x86dd), ipv6(0), hop_by_hop, dest_opts, sctp].concat();
    let (result, parsed) = parse(frame);
    assert_eq!(result, Ok(()));
    assert_eq!(parsed.key.ip_version, 6);
    assert_eq!(
        (parsed.key.protocol, parsed.key.src_port, parsed.key.dst_port),
        (IPPROTO_SCTP, 3000, 3001)
    );
    assert_eq!(parsed.key.dst_addr[15], 2);
}

#[test]
fn icmpv6_echo_uses_the_identifier_as_ports() {
    let frame = [
        ethernet(0x86dd),
        ipv6(IPPROTO_ICMPV6),
        vec![128, 0, 0, 0, 0x12, 0x34, 0, 1],
    ]
    .concat();
    let (result, parsed) = parse(frame);
    assert_eq!(result, Ok(()));
    assert_eq!(
        (parsed.icmp_type, parsed.key.src_port, parsed.key.dst_port),
        (128, 0x1234, 0x1234)
    );
}

#[test]
fn what_cannot_be_parsed_is_named() {
    assert_eq!(parse(ethernet(0x0806)).0, Err(stats::NOT_IP));
    assert_eq!(parse(ethernet(0x0800)[..10].to_vec()).0, Err(stats::TRUNCATED));
    let truncated_tcp = [ethernet(0x0800), ipv4(IPPROTO_TCP, 0), vec![0, 1]].concat();
    assert_eq!(parse(truncated_tcp).0, Err(stats::TRUNCATED));
    let mut fragment = ipv4(IPPROTO_UDP, 0);
    fragment[6] = 0x00;
    fragment[7] = 0x10;
    assert_eq!(parse([ethernet(0x0800), fragment].concat()).0, Err(stats::FRAGMENT));
    let (gre, parsed) = parse([ethernet(0x0800), ipv4(47, 0)].concat());
    assert_eq!((gre, parsed.key.protocol), (Err(stats::OTHER_L4), 47));
    // Seven hop-by-hop headers exceed what the verifier-bounded loop follows.
    let mut deep = [ethernet(0x86dd), ipv6(0)].concat();
    for _ in 0..7 {
        deep.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    }
    assert_eq!(parse(deep).0, Err(stats::IPV6_EXT_TOO_DEEP));
}
