//! The kernel's `enum skb_drop_reason` (values differ between kernels, so they are read
//! from the running kernel's BTF) and its mapping to Hubble's `flow.DropReason`.
//! docs/drop-reasons.md documents the table.

use std::collections::HashMap;
use std::sync::Arc;

use sightline_proto::flow::DropReason;

/// Kernel drop-reason values to names, without the `SKB_DROP_REASON_` prefix.
#[derive(Debug, Clone, Default)]
pub struct DropReasonNames {
    names: HashMap<u32, Arc<str>>,
}

impl DropReasonNames {
    /// The table read from this kernel's BTF (value to name, prefix stripped). An empty
    /// table is valid: drops then carry their numeric reason only.
    pub fn new(names: HashMap<u32, String>) -> Self {
        Self {
            names: names.into_iter().map(|(value, name)| (value, name.into())).collect(),
        }
    }

    /// The name, shared rather than copied (flows keep it until they are read).
    pub(crate) fn name(&self, value: u32) -> Option<Arc<str>> {
        self.names.get(&value).cloned()
    }

    /// The kernel's value for `name` (without the prefix), if this kernel has it.
    pub(crate) fn value(&self, name: &str) -> Option<u32> {
        self.names.iter().find(|(_, n)| &***n == name).map(|(value, _)| *value)
    }
}

/// Hubble's equivalent of a kernel drop reason, where one exists.
pub(crate) fn hubble_equivalent(kernel_name: &str) -> Option<DropReason> {
    Some(match kernel_name {
        "NETFILTER_DROP" => DropReason::PolicyDenied,
        "NO_SOCKET" | "SOCKET_FILTER" => DropReason::SocketLookupFailed,
        "IP_RPFILTER" | "IP_INVALID_SOURCE" => DropReason::InvalidSourceIp,
        "PKT_TOO_SMALL" | "IP_CSUM" | "IP_INHDR" | "TCP_CSUM" | "UDP_CSUM" | "ICMP_CSUM" | "HDR_TRUNC" | "SKB_CSUM" => {
            DropReason::InvalidPacketDropped
        }
        "IP_NOPROTO" => DropReason::UnknownL4Protocol,
        "UNHANDLED_PROTO" => DropReason::UnsupportedL3Protocol,
        "IP_OUTNOROUTES" | "IP_INNOROUTES" | "IPV6_NOT_ROUTED" => DropReason::FibLookupFailed,
        "IPV6_BAD_EXTHDR" => DropReason::InvalidIpv6ExtensionHeader,
        "TC_INGRESS" | "TC_EGRESS" => DropReason::PolicyDeny,
        "IP_INADDRERRORS" | "IP_LOCAL_SOURCE" => DropReason::StaleOrUnroutableIp,
        "IP_TUNNEL_ECN" | "TUNNEL_TXINFO" => DropReason::ErrorRetrievingTunnelKey,
        "NEIGH_FAILED" | "NEIGH_DEAD" => DropReason::LocalHostIsUnreachable,
        "VXLAN_INVALID_HDR" | "VXLAN_VNI_NOT_FOUND" => DropReason::InvalidVni,
        "TC_RECLASSIFY_LOOP" | "TC_COOKIE_ERROR" => DropReason::InvalidTcBuffer,
        "VLAN_FILTER" => DropReason::VlanFiltered,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netfilter_drops_are_policy_denials_and_unknown_reasons_have_none() {
        assert_eq!(hubble_equivalent("NETFILTER_DROP"), Some(DropReason::PolicyDenied));
        assert_eq!(hubble_equivalent("NO_SOCKET"), Some(DropReason::SocketLookupFailed));
        assert_eq!(hubble_equivalent("QDISC_DROP"), None);
    }
}
