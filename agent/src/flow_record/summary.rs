//! Hubble's one-line `Summary` texts for L3/L4 flows, written when a client reads the flow.

use std::fmt::Write as _;
use std::sync::Arc;

use sightline_bpf_common::{IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, tcp_flags};

/// The facts an L3/L4 flow's `Summary` is made of. The decoder keeps these and the
/// text is written only when a client reads the flow (most flows never are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct L4Summary {
    pub protocol: u8,
    pub tcp_flags: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub drop: Option<DropNote>,
}

/// Why the kernel dropped the packets, and how many the record stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DropNote {
    pub reason: u32,
    pub kernel_name: Option<Arc<str>>,
    pub packets: u64,
}

impl L4Summary {
    /// "TCP Flags: SYN", "UDP", "ICMPv4 EchoRequest", with
    /// " (kernel drop reason: NAME) xN" for drops.
    pub(crate) fn render(&self, out: &mut String) {
        match self.protocol {
            IPPROTO_TCP => tcp(self.tcp_flags, out),
            IPPROTO_UDP => out.push_str("UDP"),
            IPPROTO_SCTP => out.push_str("SCTP"),
            IPPROTO_ICMP => icmpv4(self.icmp_type, self.icmp_code, out),
            IPPROTO_ICMPV6 => icmpv6(self.icmp_type, self.icmp_code, out),
            other => {
                let _ = write!(out, "IP protocol {other}");
            }
        }
        if let Some(drop) = &self.drop {
            let _ = match &drop.kernel_name {
                Some(name) => write!(out, " (kernel drop reason: {name})"),
                None => write!(out, " (kernel drop reason: {})", drop.reason),
            };
            if drop.packets > 1 {
                let _ = write!(out, " x{}", drop.packets);
            }
        }
    }
}

/// "TCP Flags: SYN, ACK", in Hubble's flag order.
pub(crate) fn tcp(flags: u16, out: &mut String) {
    const ORDER: [(u16, &str); 9] = [
        (tcp_flags::SYN, "SYN"),
        (tcp_flags::ACK, "ACK"),
        (tcp_flags::PSH, "PSH"),
        (tcp_flags::FIN, "FIN"),
        (tcp_flags::RST, "RST"),
        (tcp_flags::URG, "URG"),
        (tcp_flags::ECE, "ECE"),
        (tcp_flags::CWR, "CWR"),
        (tcp_flags::NS, "NS"),
    ];
    out.push_str("TCP Flags: ");
    let mut first = true;
    for (bit, name) in ORDER {
        if flags & bit != 0 {
            if !first {
                out.push_str(", ");
            }
            out.push_str(name);
            first = false;
        }
    }
}

/// "ICMPv4 EchoRequest", "ICMPv4 DestinationUnreachable(Port)", as gopacket names them.
pub(crate) fn icmpv4(icmp_type: u8, code: u8, out: &mut String) {
    out.push_str("ICMPv4 ");
    let name = match icmp_type {
        0 => "EchoReply",
        3 => "DestinationUnreachable",
        4 => "SourceQuench",
        5 => "Redirect",
        8 => "EchoRequest",
        9 => "RouterAdvertisement",
        10 => "RouterSolicitation",
        11 => "TimeExceeded",
        12 => "ParameterProblem",
        13 => "TimestampRequest",
        14 => "TimestampReply",
        _ => "",
    };
    let code_name = match (icmp_type, code) {
        (3, 0) => "Net",
        (3, 1) => "Host",
        (3, 2) => "Protocol",
        (3, 3) => "Port",
        (3, 4) => "FragmentationNeeded",
        (3, 13) => "CommAdminProhibited",
        (11, 0) => "TTLExceeded",
        (11, 1) => "FragmentReassemblyTimeExceeded",
        _ => "",
    };
    // gopacket spells out unnamed codes for ICMPv4 types other than echo.
    let show_code = !matches!(icmp_type, 0 | 8);
    icmp_name(out, icmp_type, code, name, code_name, show_code);
}

pub(crate) fn icmpv6(icmp_type: u8, code: u8, out: &mut String) {
    out.push_str("ICMPv6 ");
    let name = match icmp_type {
        1 => "DestinationUnreachable",
        2 => "PacketTooBig",
        3 => "TimeExceeded",
        4 => "ParameterProblem",
        128 => "EchoRequest",
        129 => "EchoReply",
        133 => "RouterSolicitation",
        134 => "RouterAdvertisement",
        135 => "NeighborSolicitation",
        136 => "NeighborAdvertisement",
        137 => "Redirect",
        143 => "MLDv2MulticastListenerReportMessageV2",
        _ => "",
    };
    let code_name = match (icmp_type, code) {
        (1, 0) => "NoRouteToDst",
        (1, 1) => "AdminProhibited",
        (1, 3) => "Unreachable",
        (1, 4) => "PortUnreachable",
        (3, 0) => "HopLimitExceeded",
        _ => "",
    };
    icmp_name(out, icmp_type, code, name, code_name, false);
}

/// `name(code_name)`, `name(Code: n)` when asked for unnamed codes, or `type(code)`
/// for a type without a name.
fn icmp_name(out: &mut String, icmp_type: u8, code: u8, name: &str, code_name: &str, show_unnamed_code: bool) {
    if name.is_empty() {
        let _ = write!(out, "{icmp_type}({code})");
    } else if !code_name.is_empty() {
        let _ = write!(out, "{name}({code_name})");
    } else if show_unnamed_code && code != 0 {
        let _ = write!(out, "{name}(Code: {code})");
    } else {
        out.push_str(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(icmp_type: u8, code: u8) -> String {
        let mut out = String::new();
        icmpv4(icmp_type, code, &mut out);
        out
    }

    fn v6(icmp_type: u8, code: u8) -> String {
        let mut out = String::new();
        icmpv6(icmp_type, code, &mut out);
        out
    }

    #[test]
    fn icmp_types_and_codes_read_like_gopacket() {
        assert_eq!(v4(8, 0), "ICMPv4 EchoRequest");
        assert_eq!(v4(3, 3), "ICMPv4 DestinationUnreachable(Port)");
        assert_eq!(v4(3, 9), "ICMPv4 DestinationUnreachable(Code: 9)");
        assert_eq!(v4(8, 5), "ICMPv4 EchoRequest");
        assert_eq!(v4(42, 1), "ICMPv4 42(1)");
        assert_eq!(v6(129, 0), "ICMPv6 EchoReply");
        assert_eq!(v6(1, 4), "ICMPv6 DestinationUnreachable(PortUnreachable)");
        assert_eq!(v6(1, 9), "ICMPv6 DestinationUnreachable");
        assert_eq!(v6(200, 2), "ICMPv6 200(2)");
    }
}
