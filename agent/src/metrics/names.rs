//! Label values that Hubble takes from Cilium's and gopacket's tables.

use std::borrow::Cow;

use sightline_proto::flow::{DropReason, IpVersion, Verdict, layer4, layer7};

use crate::flow_record::FlowRecord;

/// Cilium monitor message types (`pkg/monitor/api`).
pub(crate) const MESSAGE_TYPE_DROP: i32 = 1;
pub(crate) const MESSAGE_TYPE_CAPTURE: i32 = 3;
pub(crate) const MESSAGE_TYPE_TRACE: i32 = 4;
pub(crate) const MESSAGE_TYPE_POLICY_VERDICT: i32 = 5;
pub(crate) const MESSAGE_TYPE_ACCESS_LOG: i32 = 129;

/// `is_reply` when the datapath knew it.
pub(crate) fn is_reply(flow: &FlowRecord) -> Option<bool> {
    flow.is_reply.as_ref().map(|reply| reply.value)
}

pub(crate) fn event_type(flow: &FlowRecord) -> (i32, i32) {
    flow.event_type.as_ref().map_or((0, 0), |t| (t.r#type, t.sub_type))
}

/// Hubble's `FlowProtocol`: the L7 protocol of access-log events, the L4 protocol
/// of datapath events.
// The proto marks Kafka deprecated; v1.19's handlers still read it.
#[allow(deprecated)]
pub(crate) fn flow_protocol(flow: &FlowRecord) -> &'static str {
    match event_type(flow).0 {
        MESSAGE_TYPE_ACCESS_LOG => match flow.l7.as_ref().and_then(|l7| l7.record.as_ref()) {
            Some(layer7::Record::Dns(_)) => "DNS",
            Some(layer7::Record::Http(_)) => "HTTP",
            Some(layer7::Record::Kafka(_)) => "Kafka",
            None => "Unknown L7",
        },
        MESSAGE_TYPE_DROP | MESSAGE_TYPE_TRACE | MESSAGE_TYPE_POLICY_VERDICT | MESSAGE_TYPE_CAPTURE => {
            match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
                Some(layer4::Protocol::Tcp(_)) => "TCP",
                Some(layer4::Protocol::Udp(_)) => "UDP",
                Some(layer4::Protocol::IcmPv4(_)) => "ICMPv4",
                Some(layer4::Protocol::IcmPv6(_)) => "ICMPv6",
                Some(layer4::Protocol::Sctp(_)) => "SCTP",
                Some(layer4::Protocol::Vrrp(_)) => "VRRP",
                Some(layer4::Protocol::Igmp(_)) => "IGMP",
                None => "Unknown L4",
            }
        }
        _ => "Unknown flow",
    }
}

/// Trace observation points by trace sub-type (Cilium `TraceObservationPoints`).
/// Hubble looks them up in a Go map, so an unknown point is "".
pub(crate) fn trace_observation_point(sub_type: i32) -> &'static str {
    const POINTS: [&str; 14] = [
        "to-endpoint",
        "to-proxy",
        "to-host",
        "to-stack",
        "to-overlay",
        "from-endpoint",
        "from-proxy",
        "from-host",
        "from-stack",
        "from-overlay",
        "from-network",
        "to-network",
        "to-crypto",
        "from-crypto",
    ];
    usize::try_from(sub_type)
        .ok()
        .and_then(|i| POINTS.get(i))
        .copied()
        .unwrap_or("")
}

/// Go's `String()` of a protobuf enum: the value name, or the number when unknown.
fn enum_name(name: Option<&'static str>, value: i32) -> Cow<'static, str> {
    name.map_or_else(|| Cow::Owned(value.to_string()), Cow::Borrowed)
}

pub(crate) fn verdict(value: i32) -> Cow<'static, str> {
    enum_name(Verdict::try_from(value).ok().map(|v| v.as_str_name()), value)
}

pub(crate) fn drop_reason(value: i32) -> Cow<'static, str> {
    enum_name(DropReason::try_from(value).ok().map(|v| v.as_str_name()), value)
}

pub(crate) fn ip_version(value: i32) -> Cow<'static, str> {
    enum_name(IpVersion::try_from(value).ok().map(|v| v.as_str_name()), value)
}

/// DNS response codes as Hubble names them; unknown codes are "" (a Go map miss).
pub(crate) fn dns_rcode(rcode: u32) -> &'static str {
    match rcode {
        0 => "No Error",
        1 => "Format Error",
        2 => "Server Failure",
        3 => "Non-Existent Domain",
        4 => "Not Implemented",
        5 => "Query Refused",
        6 => "Name Exists when it should not",
        7 => "RR Set Exists when it should not",
        8 => "RR Set that should exist does not",
        9 => "Not Authorized",
        10 => "Name not contained in zone",
        11 => "DSO-TYPE Not Implemented",
        16 => "Bad OPT Version",
        17 => "Key not recognized",
        18 => "Signature out of time window",
        19 => "Bad TKEY Mode",
        20 => "Duplicate key name",
        21 => "Algorithm not supported",
        22 => "Bad Truncation",
        23 => "Bad/missing Server Cookie",
        _ => "",
    }
}

/// An ICMP type's name and, when the type uses codes, the code names.
type TypeNames = (&'static str, Option<&'static [(u8, &'static str)]>);

/// gopacket's ICMPv4 table.
fn icmpv4_names(kind: u8) -> Option<TypeNames> {
    const UNREACHABLE: &[(u8, &str)] = &[
        (0, "Net"),
        (1, "Host"),
        (2, "Protocol"),
        (3, "Port"),
        (4, "FragmentationNeeded"),
        (5, "SourceRoutingFailed"),
        (6, "NetUnknown"),
        (7, "HostUnknown"),
        (8, "SourceIsolated"),
        (9, "NetAdminProhibited"),
        (10, "HostAdminProhibited"),
        (11, "NetTOS"),
        (12, "HostTOS"),
        (13, "CommAdminProhibited"),
        (14, "HostPrecedence"),
        (15, "PrecedenceCutoff"),
    ];
    const TIME_EXCEEDED: &[(u8, &str)] = &[(0, "TTLExceeded"), (1, "FragmentReassemblyTimeExceeded")];
    const PARAMETER: &[(u8, &str)] = &[(0, "PointerIndicatesError"), (1, "MissingOption"), (2, "BadLength")];
    const REDIRECT: &[(u8, &str)] = &[(0, "Net"), (1, "Host"), (2, "TOS+Net"), (3, "TOS+Host")];
    Some(match kind {
        0 => ("EchoReply", None),
        3 => ("DestinationUnreachable", Some(UNREACHABLE)),
        4 => ("SourceQuench", None),
        5 => ("Redirect", Some(REDIRECT)),
        8 => ("EchoRequest", None),
        9 => ("RouterAdvertisement", None),
        10 => ("RouterSolicitation", None),
        11 => ("TimeExceeded", Some(TIME_EXCEEDED)),
        12 => ("ParameterProblem", Some(PARAMETER)),
        13 => ("TimestampRequest", None),
        14 => ("TimestampReply", None),
        15 => ("InfoRequest", None),
        16 => ("InfoReply", None),
        17 => ("AddressMaskRequest", None),
        18 => ("AddressMaskReply", None),
        _ => return None,
    })
}

/// gopacket's ICMPv6 table.
fn icmpv6_names(kind: u8) -> Option<TypeNames> {
    const UNREACHABLE: &[(u8, &str)] = &[
        (0, "NoRouteToDst"),
        (1, "AdminProhibited"),
        (2, "BeyondScopeOfSrc"),
        (3, "AddressUnreachable"),
        (4, "PortUnreachable"),
        (5, "SrcAddressFailedPolicy"),
        (6, "RejectRouteToDst"),
    ];
    const TIME_EXCEEDED: &[(u8, &str)] = &[(0, "HopLimitExceeded"), (1, "FragmentReassemblyTimeExceeded")];
    const PARAMETER: &[(u8, &str)] = &[
        (0, "ErroneousHeaderField"),
        (1, "UnrecognizedNextHeader"),
        (2, "UnrecognizedIPv6Option"),
    ];
    Some(match kind {
        1 => ("DestinationUnreachable", Some(UNREACHABLE)),
        2 => ("PacketTooBig", None),
        3 => ("TimeExceeded", Some(TIME_EXCEEDED)),
        4 => ("ParameterProblem", Some(PARAMETER)),
        128 => ("EchoRequest", None),
        129 => ("EchoReply", None),
        133 => ("RouterSolicitation", None),
        134 => ("RouterAdvertisement", None),
        135 => ("NeighborSolicitation", None),
        136 => ("NeighborAdvertisement", None),
        137 => ("Redirect", None),
        _ => return None,
    })
}

/// gopacket's `ICMPv4TypeCode.String()` / `ICMPv6TypeCode.String()`. The type and
/// code are bytes on the wire; Hubble truncates the proto's uint32 the same way.
pub(crate) fn icmp_type_code(v6: bool, kind: u32, code: u32) -> Cow<'static, str> {
    let (kind, code) = (kind as u8, code as u8);
    let names = if v6 { icmpv6_names(kind) } else { icmpv4_names(kind) };
    match names {
        None => Cow::Owned(format!("{kind}({code})")),
        Some((name, None)) if code == 0 => Cow::Borrowed(name),
        Some((name, codes)) => match codes.and_then(|codes| codes.iter().find(|(c, _)| *c == code)) {
            Some((_, code_name)) => Cow::Owned(format!("{name}({code_name})")),
            None => Cow::Owned(format!("{name}(Code: {code})")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icmp_names_follow_gopacket() {
        assert_eq!(icmp_type_code(false, 8, 0), "EchoRequest");
        assert_eq!(icmp_type_code(false, 0, 0), "EchoReply");
        assert_eq!(icmp_type_code(false, 3, 3), "DestinationUnreachable(Port)");
        assert_eq!(icmp_type_code(false, 3, 99), "DestinationUnreachable(Code: 99)");
        assert_eq!(icmp_type_code(false, 8, 1), "EchoRequest(Code: 1)");
        assert_eq!(icmp_type_code(false, 42, 7), "42(7)");
        assert_eq!(icmp_type_code(false, 5, 2), "Redirect(TOS+Net)");
        assert_eq!(icmp_type_code(true, 128, 0), "EchoRequest");
        assert_eq!(icmp_type_code(true, 1, 4), "DestinationUnreachable(PortUnreachable)");
        assert_eq!(icmp_type_code(true, 3, 0), "TimeExceeded(HopLimitExceeded)");
    }

    #[test]
    fn enum_names_are_go_strings() {
        assert_eq!(verdict(Verdict::Forwarded as i32), "FORWARDED");
        assert_eq!(verdict(999), "999");
        assert_eq!(drop_reason(DropReason::PolicyDenied as i32), "POLICY_DENIED");
        assert_eq!(ip_version(IpVersion::IPv6 as i32), "IPv6");
        assert_eq!(trace_observation_point(0), "to-endpoint");
        assert_eq!(trace_observation_point(11), "to-network");
        assert_eq!(trace_observation_point(77), "");
        assert_eq!(dns_rcode(3), "Non-Existent Domain");
        assert_eq!(dns_rcode(12), "");
    }
}
