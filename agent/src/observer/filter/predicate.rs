//! One compiled FlowFilter field and how it matches a flow.

use regex::{Regex, RegexSet};
use sightline_proto::flow::{Endpoint, EventTypeFilter, TcpFlags, Verdict, layer4, layer7};

use std::sync::Arc;

use super::cel::CelFilter;
use super::ip::IpSet;
use super::labels::Selector;
use super::names::NamespacedPrefix;
use crate::event::Event;
use crate::flow_record::FlowRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Destination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IpField {
    Source,
    Destination,
    SourceXlated,
}

/// Ports as up to eight inline values, or a 64 Ki-bit map beyond (merged filters).
#[derive(Debug, Clone)]
pub(crate) enum PortSet {
    /// Unused places repeat the first port, so a lookup compares all eight at once
    /// with no length and no pointer to follow.
    Few([u16; 8]),
    Bitmap(Box<[u64; 1024]>),
}

impl PortSet {
    pub(crate) fn new(ports: Vec<u16>) -> Self {
        match ports.first() {
            Some(&first) if ports.len() <= 8 => {
                let mut few = [first; 8];
                few[..ports.len()].copy_from_slice(&ports);
                PortSet::Few(few)
            }
            _ => {
                let mut bits = Box::new([0u64; 1024]);
                for p in ports {
                    bits[usize::from(p >> 6)] |= 1 << (p & 63);
                }
                PortSet::Bitmap(bits)
            }
        }
    }

    pub(super) fn ports(&self) -> Vec<u16> {
        match self {
            PortSet::Few(few) => {
                let mut ports = few.to_vec();
                ports.sort_unstable();
                ports.dedup();
                ports
            }
            PortSet::Bitmap(bits) => (0..=u16::MAX)
                .filter(|p| bits[usize::from(p >> 6)] & (1 << (p & 63)) != 0)
                .collect(),
        }
    }

    #[inline]
    fn contains(&self, port: u16) -> bool {
        match self {
            // `|` rather than `||`: eight compares the compiler can do as one.
            PortSet::Few(few) => few.iter().fold(false, |found, &p| found | (p == port)),
            PortSet::Bitmap(bits) => bits[usize::from(port >> 6)] & (1 << (port & 63)) != 0,
        }
    }
}

pub(super) mod protocol {
    pub(crate) const TCP: u16 = 1;
    pub(crate) const UDP: u16 = 1 << 1;
    pub(crate) const ICMPV4: u16 = 1 << 2;
    pub(crate) const ICMPV6: u16 = 1 << 3;
    pub(crate) const SCTP: u16 = 1 << 4;
    pub(crate) const VRRP: u16 = 1 << 5;
    pub(crate) const IGMP: u16 = 1 << 6;
    pub(crate) const DNS: u16 = 1 << 7;
    pub(crate) const HTTP: u16 = 1 << 8;
    pub(crate) const KAFKA: u16 = 1 << 9;
}

#[derive(Debug, Clone)]
pub(crate) enum HttpStatus {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone)]
pub(crate) enum Predicate {
    Uuid(Vec<String>),
    Ip(IpField, IpSet),
    Pod(Side, Vec<NamespacedPrefix>),
    Service(Side, Vec<NamespacedPrefix>),
    Workload(Side, Vec<(String, String)>),
    Fqdn(Side, Regex),
    Label(Side, Vec<Selector>),
    NodeLabels(Vec<Selector>),
    Identity(Side, Vec<u32>),
    ClusterName(Side, Vec<String>),
    /// Bit i set = enum value i accepted (values 0..64).
    TrafficDirection(u64),
    Verdict(u64),
    DropReasonDesc(Vec<i32>),
    Interface(Vec<(u32, String)>),
    EventType(Vec<EventTypeFilter>),
    HttpStatus(Vec<HttpStatus>),
    HttpMethod(Vec<String>),
    HttpPath(RegexSet),
    HttpUrl(RegexSet),
    HttpHeader(Vec<(String, String)>),
    Protocol(u16),
    Port(Side, PortSet),
    /// Bit 0 = `false` accepted, bit 1 = `true` accepted.
    Reply(u8),
    Encrypted(u8),
    DnsQuery(RegexSet),
    TcpFlags(Vec<u16>),
    NodeName(Regex),
    IpVersion(u64),
    TraceId(Vec<String>),
    IpTraceId(Vec<u64>),
    /// `experimental.cel_expression`, OR-ed.
    Cel(Arc<CelFilter>),
}

pub(super) fn enum_bits(values: &[i32]) -> u64 {
    values
        .iter()
        .filter(|v| (0..64).contains(*v))
        .fold(0, |acc, v| acc | 1 << v)
}

fn has_bit(bits: u64, value: i32) -> bool {
    (0..64).contains(&value) && bits & (1 << value) != 0
}

fn bool_bit(value: bool) -> u8 {
    if value { 2 } else { 1 }
}

pub(super) fn tcp_flag_bits(flags: &TcpFlags) -> u16 {
    [
        flags.fin, flags.syn, flags.rst, flags.psh, flags.ack, flags.urg, flags.ece, flags.cwr, flags.ns,
    ]
    .iter()
    .enumerate()
    .fold(0, |acc, (i, set)| if *set { acc | 1 << i } else { acc })
}

fn endpoint(flow: &FlowRecord, side: Side) -> Option<&Endpoint> {
    match side {
        Side::Source => flow.source(),
        Side::Destination => flow.destination(),
    }
}

#[inline(always)]
pub(super) fn port(flow: &FlowRecord, side: Side) -> Option<u16> {
    let (src, dst) = match flow.l4.as_ref()?.protocol.as_ref()? {
        layer4::Protocol::Tcp(l4) => (l4.source_port, l4.destination_port),
        layer4::Protocol::Udp(l4) => (l4.source_port, l4.destination_port),
        layer4::Protocol::Sctp(l4) => (l4.source_port, l4.destination_port),
        _ => return None,
    };
    u16::try_from(if side == Side::Source { src } else { dst }).ok()
}

fn http(flow: &FlowRecord) -> Option<&sightline_proto::flow::Http> {
    match flow.l7.as_ref()?.record.as_ref()? {
        layer7::Record::Http(http) => Some(http),
        _ => None,
    }
}

/// `url.ParseRequestURI(u).Path` for the URL forms HTTP flows carry.
fn request_path(url: &str) -> Option<String> {
    let raw = if url.starts_with('/') {
        url
    } else {
        let (scheme, rest) = url.split_once("://")?;
        let valid_scheme = scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !valid_scheme {
            return None;
        }
        rest.find('/').map_or("", |i| &rest[i..])
    };
    let raw = raw.split_once('?').map_or(raw, |(path, _)| path);
    percent_decode(raw)
}

fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl Predicate {
    /// Folds `other` into `self` when both are OR-able value lists of one field,
    /// so N single-field filters cost one lookup.
    pub(crate) fn merge(&mut self, other: Predicate) -> Result<(), Predicate> {
        match (self, other) {
            (Predicate::Port(a, set), Predicate::Port(b, other)) if *a == b => {
                let mut ports = set.ports();
                ports.extend(other.ports());
                ports.sort_unstable();
                ports.dedup();
                *set = PortSet::new(ports);
                Ok(())
            }
            (Predicate::Identity(a, ids), Predicate::Identity(b, other)) if *a == b => {
                ids.extend(other);
                Ok(())
            }
            (Predicate::Ip(a, set), Predicate::Ip(b, other)) if *a == b => {
                set.merge(other);
                Ok(())
            }
            (Predicate::Verdict(bits), Predicate::Verdict(other)) => {
                *bits |= other;
                Ok(())
            }
            (Predicate::Uuid(ids), Predicate::Uuid(other)) => {
                ids.extend(other);
                Ok(())
            }
            (_, other) => Err(other),
        }
    }

    /// Relative evaluation cost: cheap checks run first, so a failing one skips the rest.
    pub(crate) fn cost(&self) -> u8 {
        match self {
            Predicate::Port(..)
            | Predicate::Verdict(_)
            | Predicate::Protocol(_)
            | Predicate::Identity(..)
            | Predicate::TrafficDirection(_)
            | Predicate::IpVersion(_)
            | Predicate::Reply(_)
            | Predicate::Encrypted(_)
            | Predicate::DropReasonDesc(_)
            | Predicate::EventType(_)
            | Predicate::Interface(_)
            | Predicate::IpTraceId(_)
            | Predicate::TcpFlags(_) => 0,
            Predicate::Uuid(_)
            | Predicate::Ip(..)
            | Predicate::Pod(..)
            | Predicate::Service(..)
            | Predicate::Workload(..)
            | Predicate::ClusterName(..)
            | Predicate::TraceId(_)
            | Predicate::HttpStatus(_)
            | Predicate::HttpMethod(_)
            | Predicate::HttpHeader(_) => 1,
            Predicate::Fqdn(..)
            | Predicate::Label(..)
            | Predicate::NodeLabels(_)
            | Predicate::HttpPath(_)
            | Predicate::HttpUrl(_)
            | Predicate::DnsQuery(_)
            | Predicate::NodeName(_) => 2,
            Predicate::Cel(_) => 3,
        }
    }

    /// Whether a non-flow event passes this field (only `event_type` can).
    pub(crate) fn matches_other(&self, event: &Event) -> bool {
        let Predicate::EventType(entries) = self else {
            return false;
        };
        let (kind, sub) = match event {
            Event::Lost { .. } => return true,
            Event::Agent { event, .. } => (130, event.r#type),
            Event::Debug { event, .. } => (2, event.r#type),
            Event::Flow(_) => return false,
        };
        entries
            .iter()
            .any(|e| (e.r#type == 0 || e.r#type == kind) && (!e.match_sub_type || e.sub_type == sub))
    }

    /// The common L3/L4 fields inline; the rest out of line, to keep this small.
    #[inline]
    pub(crate) fn matches(&self, flow: &FlowRecord) -> bool {
        match self {
            Predicate::Port(side, set) => port(flow, *side).is_some_and(|p| set.contains(p)),
            Predicate::Verdict(bits) => has_bit(*bits, flow.verdict),
            Predicate::Protocol(bits) => protocol_bits(flow) & bits != 0,
            Predicate::Identity(side, ids) => endpoint(flow, *side).is_some_and(|ep| ids.contains(&ep.identity)),
            _ => self.matches_other_field(flow),
        }
    }

    #[inline(never)]
    fn matches_other_field(&self, flow: &FlowRecord) -> bool {
        match self {
            Predicate::Port(..) | Predicate::Verdict(_) | Predicate::Protocol(_) | Predicate::Identity(..) => {
                self.matches(flow)
            }
            Predicate::Uuid(ids) => {
                let uuid = flow.uuid();
                ids.iter().any(|id| *id == *uuid)
            }
            Predicate::Ip(IpField::SourceXlated, set) => flow
                .ip
                .as_ref()
                .and_then(|ip| ip.source_xlated.parse().ok())
                .is_some_and(|addr| set.matches(addr)),
            Predicate::Ip(field, set) => {
                let (source, destination) = flow.ip_addresses();
                let addr = if *field == IpField::Source { source } else { destination };
                addr.is_some_and(|addr| set.matches(addr))
            }
            Predicate::Pod(side, pods) => {
                endpoint(flow, *side).is_some_and(|ep| pods.iter().any(|p| p.matches(&ep.namespace, &ep.pod_name)))
            }
            Predicate::Service(side, services) => {
                let service = match side {
                    Side::Source => flow.source_service(),
                    Side::Destination => flow.destination_service(),
                };
                service.is_some_and(|s| services.iter().any(|p| p.matches(&s.namespace, &s.name)))
            }
            Predicate::Workload(side, wanted) => endpoint(flow, *side).is_some_and(|ep| {
                ep.workloads.iter().any(|w| {
                    wanted.iter().any(|(name, kind)| {
                        (name.is_empty() || *name == w.name) && (kind.is_empty() || *kind == w.kind)
                    })
                })
            }),
            Predicate::Fqdn(side, re) => {
                let names = if *side == Side::Source {
                    flow.source_names()
                } else {
                    flow.destination_names()
                };
                names.iter().any(|n| re.is_match(n))
            }
            Predicate::Label(side, selectors) => {
                endpoint(flow, *side).is_some_and(|ep| selectors.iter().any(|s| s.matches(&ep.labels)))
            }
            Predicate::NodeLabels(selectors) => selectors.iter().any(|s| s.matches(&flow.node_labels)),
            Predicate::ClusterName(side, names) => {
                endpoint(flow, *side).is_some_and(|ep| names.contains(&ep.cluster_name))
            }
            Predicate::TrafficDirection(bits) => has_bit(*bits, flow.traffic_direction),
            Predicate::DropReasonDesc(reasons) => {
                flow.verdict == Verdict::Dropped as i32 && reasons.contains(&flow.drop_reason_desc)
            }
            Predicate::Interface(wanted) => flow.interface().is_some_and(|(have_index, have_name)| {
                wanted.iter().any(|(index, name)| {
                    (*index == 0 || *index == have_index) && (name.is_empty() || *name == have_name)
                })
            }),
            Predicate::EventType(entries) => flow.event_type.as_ref().is_some_and(|t| {
                entries
                    .iter()
                    .any(|e| (e.r#type == 0 || e.r#type == t.r#type) && (!e.match_sub_type || e.sub_type == t.sub_type))
            }),
            Predicate::HttpStatus(codes) => http(flow).is_some_and(|h| {
                if h.code == 0 {
                    return false;
                }
                let code = format!("{:03}", h.code);
                codes.iter().any(|c| match c {
                    HttpStatus::Exact(exact) => *exact == code,
                    HttpStatus::Prefix(prefix) => code.starts_with(prefix.as_str()),
                })
            }),
            Predicate::HttpMethod(methods) => http(flow)
                .is_some_and(|h| !h.method.is_empty() && methods.iter().any(|m| m.eq_ignore_ascii_case(&h.method))),
            Predicate::HttpPath(set) => http(flow)
                .and_then(|h| request_path(&h.url))
                .is_some_and(|path| set.is_match(&path)),
            Predicate::HttpUrl(set) => http(flow).is_some_and(|h| set.is_match(&h.url)),
            // The header list is deferred on parsed flows; `layer7()` builds it.
            Predicate::HttpHeader(wanted) => flow.layer7().is_some_and(|l7| match &l7.record {
                Some(layer7::Record::Http(h)) => h
                    .headers
                    .iter()
                    .any(|hd| wanted.iter().any(|(k, v)| *k == hd.key && *v == hd.value)),
                _ => false,
            }),
            Predicate::Reply(bits) => match &flow.is_reply {
                None if flow.verdict != Verdict::Dropped as i32 => false,
                reply => bits & bool_bit(reply.as_ref().is_some_and(|r| r.value)) != 0,
            },
            Predicate::Encrypted(bits) => bits & bool_bit(flow.ip.as_ref().is_some_and(|ip| ip.encrypted)) != 0,
            Predicate::DnsQuery(set) => match flow.l7.as_ref().and_then(|l7| l7.record.as_ref()) {
                Some(layer7::Record::Dns(dns)) => set.is_match(&dns.query),
                _ => false,
            },
            Predicate::TcpFlags(masks) => match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
                Some(layer4::Protocol::Tcp(tcp)) => tcp.flags.as_ref().is_some_and(|flags| {
                    let have = tcp_flag_bits(flags);
                    masks.iter().any(|want| want & have == *want)
                }),
                _ => false,
            },
            Predicate::NodeName(re) => {
                let node_name = flow.node_name();
                if node_name.contains('/') {
                    re.is_match(node_name)
                } else {
                    re.is_match(&format!("default/{node_name}"))
                }
            }
            Predicate::IpVersion(bits) => has_bit(*bits, flow.ip_version()),
            Predicate::TraceId(ids) => flow
                .trace_context
                .as_ref()
                .and_then(|t| t.parent.as_ref())
                .is_some_and(|p| ids.contains(&p.trace_id)),
            Predicate::IpTraceId(ids) => flow.ip_trace_id.as_ref().is_some_and(|t| ids.contains(&t.trace_id)),
            Predicate::Cel(filter) => filter.matches(flow),
        }
    }
}

#[inline]
fn protocol_bits(flow: &FlowRecord) -> u16 {
    use protocol::*;
    let l4 = match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(_)) => TCP,
        Some(layer4::Protocol::Udp(_)) => UDP,
        Some(layer4::Protocol::IcmPv4(_)) => ICMPV4,
        Some(layer4::Protocol::IcmPv6(_)) => ICMPV6,
        Some(layer4::Protocol::Sctp(_)) => SCTP,
        Some(layer4::Protocol::Vrrp(_)) => VRRP,
        Some(layer4::Protocol::Igmp(_)) => IGMP,
        None => 0,
    };
    #[allow(deprecated)]
    let l7 = match flow.l7.as_ref().and_then(|l7| l7.record.as_ref()) {
        Some(layer7::Record::Dns(_)) => DNS,
        Some(layer7::Record::Http(_)) => HTTP,
        Some(layer7::Record::Kafka(_)) => KAFKA,
        None => 0,
    };
    l4 | l7
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_sets_hold_exactly_their_ports_in_either_form() {
        for ports in [
            vec![443],
            vec![80, 443, 8080],
            (1..=8).collect(),
            (1..=9).collect(),
            vec![],
        ] {
            let set = PortSet::new(ports.clone());
            assert_eq!(matches!(set, PortSet::Few(_)), (1..=8).contains(&ports.len()));
            for port in [0, 1, 8, 9, 10, 80, 443, 8080, u16::MAX] {
                assert_eq!(set.contains(port), ports.contains(&port), "{ports:?} / {port}");
            }
            let mut sorted = ports.clone();
            sorted.sort_unstable();
            assert_eq!(set.ports(), sorted);
        }
    }

    #[test]
    fn request_paths_follow_parse_request_uri() {
        assert_eq!(request_path("http://a.b/x/y?q=1").as_deref(), Some("/x/y"));
        assert_eq!(request_path("/p%20q").as_deref(), Some("/p q"));
        assert_eq!(request_path("http://host").as_deref(), Some(""));
        assert_eq!(request_path("relative/path"), None);
        assert_eq!(request_path("/bad%zz"), None);
    }
}
