//! Turns ring-buffer records into Hubble `flow.Flow`s.

use rustc_hash::FxHashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use pbjson_types::BoolValue;
use sightline_bpf_common::{
    DNS_MAX_LEN, FlowEvent, FlowKey, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, hook, kind,
    tcp_flags,
};
use sightline_proto::flow::{
    self, CiliumEventType, Dns, DropReason, FlowType, L7FlowType, Layer4, Layer7, TraceObservationPoint,
    TrafficDirection, Verdict, layer4, layer7,
};
use thiserror::Error;

use super::clock::BootClock;
use super::conntrack::Connections;
use super::dns::{self, DnsError};
use super::dns_latency::DnsLatency;
use super::drop_reason::{DropReasonNames, hubble_equivalent};
use crate::event::Event;
use crate::flow_record::summary::{DropNote, L4Summary};
use crate::flow_record::{FlowRecord, pack_mac};
use crate::l7::{L7Message, L7Settings, L7Stats, L7Tracker};

/// Cilium monitor message types (`CiliumEventType.type`).
pub(crate) const MONITOR_DROP: i32 = 1;
pub(crate) const MONITOR_TRACE: i32 = 4;
pub(crate) const MONITOR_L7: i32 = 129;

/// Observation string for DNS seen in packets (Cilium's proxy says "proxy").
pub(crate) const DNS_OBSERVATION_SOURCE: &str = "ebpf";

/// Why a ring-buffer record gave no event. The reader counts and logs these and goes
/// on with the next record; a record from a mismatched eBPF object shows up here.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The record (its length given) cannot hold the common event header.
    #[error("ring-buffer record of {0} bytes is shorter than an event header")]
    ShortRecord(usize),
    /// The header's `kind` is none the decoder knows (the eBPF object is newer).
    #[error("unknown ring-buffer event kind {0}")]
    UnknownKind(u32),
    /// A DNS record's header announces more payload bytes than the record holds.
    #[error("DNS record claims {claimed} bytes but carries {carried}")]
    DnsLength {
        /// Payload length from the header, capped at the capture limit.
        claimed: usize,
        /// Bytes present after the header.
        carried: usize,
    },
    /// The captured DNS payload is not a DNS message the parser accepts.
    #[error("malformed DNS message: {0}")]
    Dns(#[from] DnsError),
    /// An L7 record's captured length exceeds the segment's payload length.
    #[error("L7 record claims {claimed} captured bytes of a {payload}-byte payload")]
    L7Length {
        /// Captured bytes the header announces.
        claimed: usize,
        /// The TCP payload length of the segment.
        payload: u32,
    },
    /// An L7 record carries an IP protocol other than TCP.
    #[error("L7 record names unknown protocol {0}")]
    L7Protocol(u8),
    /// [`Decoder::decode`] was given an L7 record, which may hold any number of
    /// messages; [`Decoder::decode_each`] takes every kind.
    #[error("an L7 record can give any number of flows: decode it with decode_each")]
    L7NeedsEach,
}

/// What the agent knows about an interface it observes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// The link name flows report in `flow.interface.name` (e.g. `lxc1a2b`, `eth0`).
    pub name: String,
    /// Which way ingress and egress point, so flows get the right direction.
    pub role: InterfaceRole,
}

/// Where an observed interface sits, which decides whether a packet entering it is
/// reported as leaving a pod (egress, `FROM_ENDPOINT`) or arriving from the network
/// (ingress, `FROM_NETWORK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceRole {
    /// Host side of a pod's veth: TC ingress is traffic from the pod.
    Endpoint,
    /// A host uplink: TC/XDP ingress is traffic from the network.
    Uplink,
}

/// `flow.emitter.version`.
const EMITTER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// An observed interface as flows share it.
struct Interface {
    name: Arc<str>,
    role: InterfaceRole,
}

/// Turns ring-buffer records into events for one agent. Holds per-connection state
/// (request direction, DNS queries awaiting answers, L7 parsers), so records of one
/// ring must go through one decoder in ring order.
pub struct Decoder {
    node_name: Arc<str>,
    clock: BootClock,
    interfaces: FxHashMap<u32, Interface>,
    /// Name of interfaces the agent was not told about (shared, not allocated per flow).
    unnamed: Arc<str>,
    connections: Connections,
    dns_latency: DnsLatency,
    drop_reasons: DropReasonNames,
    ignored_drop_reasons: Vec<u32>,
    /// The kernel's NO_SOCKET value, for the echo-reply exception in `ignores`.
    no_socket: Option<u32>,
    /// Connections selected for L7 parsing, and the records they complete.
    l7: L7Tracker,
    l7_messages: Vec<L7Message>,
    /// Flow UUIDs only need to be unique: a fast generator seeded from the OS
    /// costs ~2 ns where a cryptographic one costs ~15 ns per event.
    uuids: fastrand::Rng,
}

impl Decoder {
    /// A decoder naming `node_name` in every flow and drop reasons with this
    /// kernel's names. Interfaces it has not been told about decode with an empty
    /// name and the endpoint role.
    pub fn new(node_name: String, drop_reasons: DropReasonNames) -> Self {
        Self {
            node_name: node_name.into(),
            clock: BootClock::sample(),
            interfaces: FxHashMap::default(),
            unnamed: Arc::from(""),
            connections: Connections::new(1 << 16),
            dns_latency: DnsLatency::new(1 << 14),
            no_socket: drop_reasons.value("NO_SOCKET"),
            drop_reasons,
            ignored_drop_reasons: Vec::new(),
            l7: L7Tracker::new(L7Settings::default()),
            l7_messages: Vec::new(),
            uuids: fastrand::Rng::new(),
        }
    }

    /// Limits and redaction of L7 parsing; connections followed so far are forgotten.
    pub(crate) fn set_l7_settings(&mut self, settings: L7Settings) {
        self.l7 = L7Tracker::new(settings);
    }

    /// Counters of the L7 parsers (failures per protocol and reason, records).
    pub fn l7_stats(&self) -> &L7Stats {
        self.l7.stats()
    }

    /// Names interface `ifindex` and its role for flows decoded from now on; `None`
    /// forgets an interface that went away.
    pub fn set_interface(&mut self, ifindex: u32, info: Option<InterfaceInfo>) {
        match info {
            Some(info) => self.interfaces.insert(
                ifindex,
                Interface {
                    name: info.name.into(),
                    role: info.role,
                },
            ),
            None => self.interfaces.remove(&ifindex),
        };
    }

    /// Stops reporting drops with these kernel reasons; returns the names this kernel does not know.
    pub(crate) fn ignore_drop_reasons<'a>(&mut self, names: &'a [String]) -> Vec<&'a str> {
        let mut unknown = Vec::new();
        for name in names {
            let name = name.trim().trim_start_matches("SKB_DROP_REASON_");
            match self.drop_reasons.value(name) {
                Some(value) => self.ignored_drop_reasons.push(value),
                None => unknown.push(name),
            }
        }
        unknown
    }

    /// Whether `record` is a drop not to report: one of the ignored reasons, or an
    /// ICMP echo reply freed as NO_SOCKET. The ICMP layer frees every echo reply that
    /// no ping *datagram* socket claims, even when a raw socket (ping(8) with
    /// CAP_NET_RAW) already received its copy, so reporting it would show a
    /// successful ping as dropped.
    pub(crate) fn ignores(&self, record: &[u8]) -> bool {
        if record.len() < size_of::<FlowEvent>() {
            return false;
        }
        // SAFETY: the length is checked above and FlowEvent is plain old data.
        let event: FlowEvent = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
        if event.kind != kind::DROP {
            return false;
        }
        let echo_reply = matches!((event.key.protocol, event.icmp_type), (1, 0) | (58, 129));
        self.ignored_drop_reasons.contains(&event.reason) || (echo_reply && Some(event.reason) == self.no_socket)
    }

    /// Re-reads the offset between boot time and wall time, so flow times follow
    /// steps of the wall clock (NTP, `date -s`); the datapath calls it on a timer.
    pub(crate) fn resample_clock(&mut self) {
        self.clock = BootClock::sample();
    }

    /// Decodes `record` into every event it holds: one, except a TCP segment that
    /// carries several DNS messages (each behind its 2-byte length), which gives one
    /// L7 flow per message. Events before a malformed message are still emitted.
    pub fn decode_each(&mut self, record: &[u8], emit: &mut dyn FnMut(Event)) -> Result<(), DecodeError> {
        if record_kind(record) == Some(kind::L7) {
            return self.l7_record(record, emit);
        }
        let Some((event, payload)) = self.tcp_dns(record)? else {
            emit(self.decode(record)?);
            return Ok(());
        };
        for message in dns::tcp_messages(payload) {
            emit(self.dns(&event, message)?);
        }
        Ok(())
    }

    /// The header and captured payload of a DNS-over-TCP record, `None` for any other.
    fn tcp_dns<'a>(&self, record: &'a [u8]) -> Result<Option<(FlowEvent, &'a [u8])>, DecodeError> {
        let header_len = size_of::<FlowEvent>();
        if record.len() < header_len {
            return Err(DecodeError::ShortRecord(record.len()));
        }
        // SAFETY: the length is checked above and FlowEvent is plain old data.
        let event: FlowEvent = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
        if event.kind != kind::DNS || event.key.protocol != IPPROTO_TCP {
            return Ok(None);
        }
        let claimed = (event.dns_len as usize).min(DNS_MAX_LEN);
        let payload = record
            .get(header_len..header_len + claimed)
            .ok_or(DecodeError::DnsLength {
                claimed,
                carried: record.len() - header_len,
            })?;
        Ok(Some((event, payload)))
    }

    /// Decodes the first event of `record` (for DNS over TCP, its first message).
    pub fn decode(&mut self, record: &[u8]) -> Result<Event, DecodeError> {
        let header_len = size_of::<FlowEvent>();
        if record.len() < header_len {
            return Err(DecodeError::ShortRecord(record.len()));
        }
        // SAFETY: the length is checked above and FlowEvent is plain old data.
        let event: FlowEvent = unsafe { std::ptr::read_unaligned(record.as_ptr().cast()) };
        match event.kind {
            kind::TRACE => Ok(self.trace(&event)),
            kind::DROP => Ok(self.drop(&event)),
            kind::DNS => {
                let claimed = (event.dns_len as usize).min(DNS_MAX_LEN);
                let payload = record
                    .get(header_len..header_len + claimed)
                    .ok_or(DecodeError::DnsLength {
                        claimed,
                        carried: record.len() - header_len,
                    })?;
                let message = if event.key.protocol == IPPROTO_TCP {
                    dns::tcp_messages(payload).next().unwrap_or_default()
                } else {
                    payload
                };
                self.dns(&event, message)
            }
            kind::L7 => Err(DecodeError::L7NeedsEach),
            other => Err(DecodeError::UnknownKind(other)),
        }
    }

    /// Built in its box: a `Flow` is large, and moving it costs more than filling it.
    /// Text fields are left to `FlowRecord::deferred` (see `flow_record::deferred`):
    /// this box is the only allocation of an L3/L4 event.
    fn base_flow(&mut self, event: &FlowEvent, verdict: Verdict) -> Box<FlowRecord> {
        let mut flow = Box::<FlowRecord>::default();
        flow.addresses = Some(addresses(&event.key));
        flow.time = Some(self.clock.to_wall(event.timestamp_ns));
        flow.verdict = verdict as i32;
        flow.r#type = FlowType::L3L4 as i32;
        flow.l4 = l4(event);
        let interface = self.interfaces.get(&event.key.ifindex);
        let role = interface.map_or(InterfaceRole::Endpoint, |i| i.role);
        let (direction, point) = observation(event.key.hook, role);
        flow.traffic_direction = direction as i32;
        flow.trace_observation_point = point as i32;
        let deferred = &mut flow.deferred;
        deferred.uuid = Some(uuid::Builder::from_random_bytes(self.uuids.u128(..).to_le_bytes()).into_uuid());
        deferred.emitter_version = Some(EMITTER_VERSION);
        deferred.node_name = Some(Arc::clone(&self.node_name));
        if event.eth_src != [0; 6] || event.eth_dst != [0; 6] {
            deferred.ethernet = Some([pack_mac(&event.eth_src), pack_mac(&event.eth_dst)]);
        }
        if event.key.ifindex != 0 {
            let name = interface.map_or_else(|| Arc::clone(&self.unnamed), |i| Arc::clone(&i.name));
            deferred.interface = Some((event.key.ifindex, name));
        }
        flow
    }

    fn l4_summary(event: &FlowEvent, drop: Option<DropNote>) -> L4Summary {
        L4Summary {
            protocol: event.key.protocol,
            tcp_flags: event.tcp_flags,
            icmp_type: event.icmp_type,
            icmp_code: event.icmp_code,
            drop,
        }
    }

    // Hubble still fills the deprecated `reply` and `Summary`, and so do we.
    #[allow(deprecated)]
    fn trace(&mut self, event: &FlowEvent) -> Event {
        let mut flow = self.base_flow(event, Verdict::Forwarded);
        let is_reply = self.connections.observe(&event.key, event.tcp_flags, event.icmp_type);
        flow.is_reply = Some(BoolValue { value: is_reply });
        flow.reply = is_reply;
        flow.event_type = Some(CiliumEventType {
            r#type: MONITOR_TRACE,
            sub_type: trace_sub_type(flow.trace_observation_point),
        });
        flow.deferred.summary = Some(Self::l4_summary(event, None));
        Event::Flow(flow)
    }

    #[allow(deprecated)]
    fn drop(&mut self, event: &FlowEvent) -> Event {
        let mut flow = self.base_flow(event, Verdict::Dropped);
        if let Some(is_reply) = self.connections.peek(&event.key) {
            flow.is_reply = Some(BoolValue { value: is_reply });
            flow.reply = is_reply;
        }
        let kernel_name = self.drop_reasons.name(event.reason);
        let hubble = kernel_name.as_deref().and_then(hubble_equivalent);
        let reason = hubble.unwrap_or(DropReason::Unknown);
        flow.drop_reason_desc = reason as i32;
        flow.drop_reason = reason as u32;
        flow.event_type = Some(CiliumEventType {
            r#type: MONITOR_DROP,
            sub_type: reason as i32,
        });
        let note = DropNote {
            reason: event.reason,
            kernel_name,
            packets: event.packets,
        };
        flow.deferred.summary = Some(Self::l4_summary(event, Some(note)));
        Event::Flow(flow)
    }

    /// Where a DNS message becomes an L7 flow: at the client's pod, where Hubble's DNS
    /// proxy sees it — the query leaving the pod, the answer entering it. Elsewhere
    /// (the server's veth, an uplink) the packet is an ordinary L3/L4 trace, so a
    /// query between two pods of one node is one request and one response, not two of each.
    fn at_the_client(&self, event: &FlowEvent, is_response: bool) -> bool {
        let role = self
            .interfaces
            .get(&event.key.ifindex)
            .map_or(InterfaceRole::Endpoint, |i| i.role);
        let expected = if is_response {
            TraceObservationPoint::ToEndpoint
        } else {
            TraceObservationPoint::FromEndpoint
        };
        observation(event.key.hook, role).1 == expected
    }

    #[allow(deprecated)]
    fn dns(&mut self, event: &FlowEvent, payload: &[u8]) -> Result<Event, DecodeError> {
        let message = dns::parse(payload)?;
        if !self.at_the_client(event, message.is_response) {
            return Ok(self.trace(event));
        }
        let mut flow = self.base_flow(event, Verdict::Forwarded);
        flow.r#type = FlowType::L7 as i32;
        flow.is_reply = Some(BoolValue {
            value: message.is_response,
        });
        flow.reply = message.is_response;
        flow.event_type = Some(CiliumEventType {
            r#type: MONITOR_L7,
            sub_type: 0,
        });
        let latency_ns = if message.is_response {
            self.dns_latency
                .answer(&event.key, message.id, event.timestamp_ns)
                .unwrap_or(0)
        } else {
            self.dns_latency.ask(&event.key, message.id, event.timestamp_ns);
            0
        };
        flow.summary = dns::summary(&message);
        flow.l7 = Some(Box::new(Layer7 {
            r#type: if message.is_response {
                L7FlowType::Response
            } else {
                L7FlowType::Request
            } as i32,
            latency_ns,
            record: Some(layer7::Record::Dns(Dns {
                query: message.query,
                ips: message.ips,
                ttl: message.ttl,
                cnames: message.cnames,
                observation_source: DNS_OBSERVATION_SOURCE.to_owned(),
                rcode: message.rcode as u32,
                qtypes: message.qtypes.iter().map(|t| (*t).to_owned()).collect(),
                rrtypes: message.rrtypes.iter().map(|t| (*t).to_owned()).collect(),
            })),
        }));
        Ok(Event::Flow(flow))
    }
}

fn record_kind(record: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(record.get(..4)?.try_into().ok()?))
}

fn addresses(key: &FlowKey) -> (IpAddr, IpAddr) {
    if key.ip_version == 6 {
        (Ipv6Addr::from(key.src_addr).into(), Ipv6Addr::from(key.dst_addr).into())
    } else {
        let v4 = |a: &[u8; 16]| IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]));
        (v4(&key.src_addr), v4(&key.dst_addr))
    }
}

fn l4(event: &FlowEvent) -> Option<Layer4> {
    let key = &event.key;
    let (sport, dport) = (key.src_port as u32, key.dst_port as u32);
    let protocol = match key.protocol {
        IPPROTO_TCP => layer4::Protocol::Tcp(flow::Tcp {
            source_port: sport,
            destination_port: dport,
            flags: Some(tcp_flag_set(event.tcp_flags)),
        }),
        IPPROTO_UDP => layer4::Protocol::Udp(flow::Udp {
            source_port: sport,
            destination_port: dport,
        }),
        IPPROTO_SCTP => layer4::Protocol::Sctp(flow::Sctp {
            source_port: sport,
            destination_port: dport,
        }),
        IPPROTO_ICMP => layer4::Protocol::IcmPv4(flow::IcmPv4 {
            r#type: event.icmp_type as u32,
            code: event.icmp_code as u32,
        }),
        IPPROTO_ICMPV6 => layer4::Protocol::IcmPv6(flow::IcmPv6 {
            r#type: event.icmp_type as u32,
            code: event.icmp_code as u32,
        }),
        _ => return None,
    };
    Some(Layer4 {
        protocol: Some(protocol),
    })
}

fn tcp_flag_set(flags: u16) -> flow::TcpFlags {
    flow::TcpFlags {
        fin: flags & tcp_flags::FIN != 0,
        syn: flags & tcp_flags::SYN != 0,
        rst: flags & tcp_flags::RST != 0,
        psh: flags & tcp_flags::PSH != 0,
        ack: flags & tcp_flags::ACK != 0,
        urg: flags & tcp_flags::URG != 0,
        ece: flags & tcp_flags::ECE != 0,
        cwr: flags & tcp_flags::CWR != 0,
        ns: flags & tcp_flags::NS != 0,
    }
}

/// Direction is relative to the pod (Hubble's convention) or to the node for uplinks.
fn observation(hook_point: u8, role: InterfaceRole) -> (TrafficDirection, TraceObservationPoint) {
    match (hook_point, role) {
        (hook::TC_INGRESS, InterfaceRole::Endpoint) => (TrafficDirection::Egress, TraceObservationPoint::FromEndpoint),
        (hook::TC_EGRESS, InterfaceRole::Endpoint) => (TrafficDirection::Ingress, TraceObservationPoint::ToEndpoint),
        (hook::TC_INGRESS | hook::XDP, InterfaceRole::Uplink) => {
            (TrafficDirection::Ingress, TraceObservationPoint::FromNetwork)
        }
        (hook::TC_EGRESS, InterfaceRole::Uplink) => (TrafficDirection::Egress, TraceObservationPoint::ToNetwork),
        (hook::XDP, InterfaceRole::Endpoint) => (TrafficDirection::Egress, TraceObservationPoint::FromEndpoint),
        _ => (TrafficDirection::Unknown, TraceObservationPoint::UnknownPoint),
    }
}

/// Cilium's trace sub-types (`pkg/monitor/api`): to-endpoint 0, from-endpoint 5, ...
fn trace_sub_type(point: i32) -> i32 {
    match TraceObservationPoint::try_from(point) {
        Ok(TraceObservationPoint::ToEndpoint) => 0,
        Ok(TraceObservationPoint::FromEndpoint) => 5,
        Ok(TraceObservationPoint::FromNetwork) => 10,
        Ok(TraceObservationPoint::ToNetwork) => 11,
        _ => 0,
    }
}

#[path = "l7_flow.rs"]
pub mod l7_flow;

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
