//! A flow's `ExportEvent` line written straight from the pipeline's record.
//!
//! The generic path materialises a `flow.Flow` (cloning every attached endpoint,
//! formatting the deferred fields into new strings) and runs the generated serde
//! code, about 5 µs per flow. Here the record's parts are written where they are:
//! deferred addresses from their binary form, shared endpoints from JSON text
//! rendered once per pod ([`Shared::json`]), timestamps without a calendar
//! library. Fields follow the generated serializer's order and omit defaults as
//! it does; sub-messages a datapath flow rarely carries (L7, tunnel, policies,
//! ...) go through the generated serializer, which is exact by construction.
//! A property test checks every line against that serializer.

use std::net::IpAddr;

use serde::Serialize;
use sightline_proto::flow::{
    AuthType, DebugCapturePoint, DropReason, Endpoint, FlowType, IpVersion, Service, SocketTranslationPoint,
    TraceObservationPoint, TraceReason, TrafficDirection, Verdict, layer4,
};

use super::json_text::{self, TimestampText};
use crate::flow_record::{EMITTER_NAME, FlowRecord, Shared, ip_text, mac_text};

/// The record holds a value the fast writer does not print (an enum number
/// without a name, a time outside protojson's range): the caller takes the
/// generic path, which reports it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unsupported;

/// Writes fields of one JSON object, a comma before all but the first.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Writes `"name":` and returns the buffer for the value.
    fn key(&mut self, quoted_name_colon: &[u8]) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.extend_from_slice(quoted_name_colon);
        self.out
    }

    fn string(&mut self, key: &[u8], value: &str) {
        if !value.is_empty() {
            json_text::string(self.key(key), value);
        }
    }

    fn uint(&mut self, key: &[u8], value: impl itoa::Integer + Default + PartialEq) {
        if value != Default::default() {
            json_text::uint(self.key(key), value);
        }
    }

    fn quoted_int(&mut self, key: &[u8], value: u64) {
        if value != 0 {
            json_text::quoted_int(self.key(key), value);
        }
    }

    fn bool(&mut self, key: &[u8], value: bool) {
        if value {
            self.key(key).extend_from_slice(b"true");
        }
    }

    /// An enum by its proto name; 0 is the default and omitted.
    fn enumeration(&mut self, key: &[u8], value: i32, name: Option<&'static str>) -> Result<(), Unsupported> {
        if value == 0 {
            return Ok(());
        }
        let name = name.ok_or(Unsupported)?;
        let out = self.key(key);
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
        Ok(())
    }

    fn strings(&mut self, key: &[u8], values: &[String]) {
        if !values.is_empty() {
            string_list(self.key(key), values);
        }
    }

    /// A sub-message through the generated serializer.
    fn generated<T: Serialize>(&mut self, key: &[u8], value: Option<&T>) -> Result<(), Unsupported> {
        match value {
            Some(value) => generated(self.key(key), value),
            None => Ok(()),
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

fn string_list(out: &mut Vec<u8>, values: &[String]) {
    out.push(b'[');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_text::string(out, value);
    }
    out.push(b']');
}

fn generated<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), Unsupported> {
    let start = out.len();
    serde_json::to_writer(&mut *out, value).map_err(|_| Unsupported)?;
    json_text::escape_html_from(out, start);
    Ok(())
}

/// Appends `{"flow":{…},"node_name":…,"time":…}` and a newline for `record`, in
/// Hubble's key order. `scratch` is reused for the summary text. On error `out`
/// is left as it was.
pub(crate) fn write_flow_line(record: &FlowRecord, scratch: &mut String, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    let start = out.len();
    let written = write_flow_line_inner(record, scratch, out);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

fn write_flow_line_inner(record: &FlowRecord, scratch: &mut String, out: &mut Vec<u8>) -> Result<(), Unsupported> {
    let time = record
        .flow
        .time
        .map(TimestampText::new)
        .map(|t| t.ok_or(Unsupported))
        .transpose()?;
    out.extend_from_slice(b"{\"flow\":");
    write_flow(record, time.as_ref(), scratch, out)?;
    let node_name = record.node_name();
    if !node_name.is_empty() {
        out.extend_from_slice(b",\"node_name\":");
        json_text::string(out, node_name);
    }
    if let Some(time) = &time {
        out.extend_from_slice(b",\"time\":");
        out.extend_from_slice(time.as_bytes());
    }
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// The `flow.Flow` object of `record`, metadata and deferred fields included.
// Deprecated fields are still written while Hubble writes them.
#[allow(deprecated)]
fn write_flow(
    record: &FlowRecord,
    time: Option<&TimestampText>,
    scratch: &mut String,
    out: &mut Vec<u8>,
) -> Result<(), Unsupported> {
    let flow = &record.flow;
    let deferred = &record.deferred;
    let mut o = Object::open(out);
    if let Some(time) = time {
        o.key(b"\"time\":").extend_from_slice(time.as_bytes());
    }
    match deferred.uuid {
        Some(id) if flow.uuid.is_empty() => {
            let out = o.key(b"\"uuid\":");
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            out.push(b'"');
            out.extend_from_slice(id.hyphenated().encode_lower(&mut text).as_bytes());
            out.push(b'"');
        }
        _ => o.string(b"\"uuid\":", &flow.uuid),
    }
    match (&flow.emitter, deferred.emitter_version) {
        (Some(emitter), _) => o.generated(b"\"emitter\":", Some(&**emitter))?,
        (None, Some(version)) => {
            let mut emitter = Object::open(o.key(b"\"emitter\":"));
            emitter.string(b"\"name\":", EMITTER_NAME);
            emitter.string(b"\"version\":", version);
            emitter.close();
        }
        (None, None) => {}
    }
    o.enumeration(
        b"\"verdict\":",
        flow.verdict,
        Verdict::try_from(flow.verdict).ok().map(|v| v.as_str_name()),
    )?;
    o.uint(b"\"drop_reason\":", flow.drop_reason);
    o.enumeration(
        b"\"auth_type\":",
        flow.auth_type,
        AuthType::try_from(flow.auth_type).ok().map(|v| v.as_str_name()),
    )?;
    match (&flow.ethernet, deferred.ethernet) {
        (Some(ethernet), _) => {
            let mut e = Object::open(o.key(b"\"ethernet\":"));
            e.string(b"\"source\":", &ethernet.source);
            e.string(b"\"destination\":", &ethernet.destination);
            e.close();
        }
        (None, Some([source, destination])) => {
            let mut e = Object::open(o.key(b"\"ethernet\":"));
            e.string(b"\"source\":", mac_text(source).as_str());
            e.string(b"\"destination\":", mac_text(destination).as_str());
            e.close();
        }
        (None, None) => {}
    }
    match (&flow.ip, record.addresses) {
        (Some(ip), _) => {
            let mut i = Object::open(o.key(b"\"IP\":"));
            i.string(b"\"source\":", &ip.source);
            i.string(b"\"source_xlated\":", &ip.source_xlated);
            i.string(b"\"destination\":", &ip.destination);
            i.enumeration(
                b"\"ipVersion\":",
                ip.ip_version,
                IpVersion::try_from(ip.ip_version).ok().map(|v| v.as_str_name()),
            )?;
            i.bool(b"\"encrypted\":", ip.encrypted);
            i.close();
        }
        (None, Some((source, destination))) => {
            let version = match source {
                IpAddr::V4(_) => IpVersion::IPv4,
                IpAddr::V6(_) => IpVersion::IPv6,
            };
            let mut i = Object::open(o.key(b"\"IP\":"));
            i.string(b"\"source\":", ip_text(source).as_str());
            i.string(b"\"destination\":", ip_text(destination).as_str());
            i.enumeration(b"\"ipVersion\":", version as i32, Some(version.as_str_name()))?;
            i.close();
        }
        (None, None) => {}
    }
    if let Some(l4) = &flow.l4 {
        write_l4(o.key(b"\"l4\":"), l4)?;
    }
    o.generated(b"\"tunnel\":", flow.tunnel.as_deref())?;
    if let Some(shared) = &record.metadata.source {
        o.key(b"\"source\":").extend_from_slice(shared_endpoint(shared));
    } else if let Some(endpoint) = &flow.source {
        write_endpoint(o.key(b"\"source\":"), endpoint);
    }
    if let Some(shared) = &record.metadata.destination {
        o.key(b"\"destination\":").extend_from_slice(shared_endpoint(shared));
    } else if let Some(endpoint) = &flow.destination {
        write_endpoint(o.key(b"\"destination\":"), endpoint);
    }
    o.enumeration(
        b"\"Type\":",
        flow.r#type,
        FlowType::try_from(flow.r#type).ok().map(|v| v.as_str_name()),
    )?;
    o.string(b"\"node_name\":", record.node_name());
    o.strings(b"\"node_labels\":", &flow.node_labels);
    o.strings(b"\"source_names\":", record.source_names());
    o.strings(b"\"destination_names\":", record.destination_names());
    o.generated(b"\"l7\":", record.layer7().as_deref())?;
    o.bool(b"\"reply\":", flow.reply);
    if let Some(event_type) = &flow.event_type {
        let mut e = Object::open(o.key(b"\"event_type\":"));
        e.uint(b"\"type\":", event_type.r#type);
        e.uint(b"\"sub_type\":", event_type.sub_type);
        e.close();
    }
    if let Some(service) = record.source_service() {
        write_service(o.key(b"\"source_service\":"), service);
    }
    if let Some(service) = record.destination_service() {
        write_service(o.key(b"\"destination_service\":"), service);
    }
    o.enumeration(
        b"\"traffic_direction\":",
        flow.traffic_direction,
        TrafficDirection::try_from(flow.traffic_direction)
            .ok()
            .map(|v| v.as_str_name()),
    )?;
    o.uint(b"\"policy_match_type\":", flow.policy_match_type);
    o.enumeration(
        b"\"trace_observation_point\":",
        flow.trace_observation_point,
        TraceObservationPoint::try_from(flow.trace_observation_point)
            .ok()
            .map(|v| v.as_str_name()),
    )?;
    o.enumeration(
        b"\"trace_reason\":",
        flow.trace_reason,
        TraceReason::try_from(flow.trace_reason).ok().map(|v| v.as_str_name()),
    )?;
    o.generated(b"\"file\":", flow.file.as_deref())?;
    o.generated(b"\"ip_trace_id\":", flow.ip_trace_id.as_ref())?;
    o.enumeration(
        b"\"drop_reason_desc\":",
        flow.drop_reason_desc,
        DropReason::try_from(flow.drop_reason_desc)
            .ok()
            .map(|v| v.as_str_name()),
    )?;
    if let Some(is_reply) = &flow.is_reply {
        json_text::bool(o.key(b"\"is_reply\":"), is_reply.value);
    }
    o.enumeration(
        b"\"debug_capture_point\":",
        flow.debug_capture_point,
        DebugCapturePoint::try_from(flow.debug_capture_point)
            .ok()
            .map(|v| v.as_str_name()),
    )?;
    if let Some((index, name)) = record.interface() {
        let mut i = Object::open(o.key(b"\"interface\":"));
        i.uint(b"\"index\":", index);
        i.string(b"\"name\":", name);
        i.close();
    }
    o.uint(b"\"proxy_port\":", flow.proxy_port);
    o.generated(b"\"trace_context\":", flow.trace_context.as_deref())?;
    o.enumeration(
        b"\"sock_xlate_point\":",
        flow.sock_xlate_point,
        SocketTranslationPoint::try_from(flow.sock_xlate_point)
            .ok()
            .map(|v| v.as_str_name()),
    )?;
    o.quoted_int(b"\"socket_cookie\":", flow.socket_cookie);
    o.quoted_int(b"\"cgroup_id\":", flow.cgroup_id);
    let own_summary = &flow.summary;
    match &deferred.summary {
        Some(summary) if own_summary.is_empty() => {
            scratch.clear();
            summary.render(scratch);
            o.string(b"\"Summary\":", scratch);
        }
        _ => o.string(b"\"Summary\":", own_summary),
    }
    o.generated(b"\"extensions\":", flow.extensions.as_deref())?;
    write_policies(&mut o, b"\"egress_allowed_by\":", &flow.egress_allowed_by)?;
    write_policies(&mut o, b"\"ingress_allowed_by\":", &flow.ingress_allowed_by)?;
    write_policies(&mut o, b"\"egress_denied_by\":", &flow.egress_denied_by)?;
    write_policies(&mut o, b"\"ingress_denied_by\":", &flow.ingress_denied_by)?;
    o.strings(b"\"policy_log\":", &flow.policy_log);
    if let Some(aggregate) = &flow.aggregate {
        let mut a = Object::open(o.key(b"\"aggregate\":"));
        a.uint(b"\"ingress_flow_count\":", aggregate.ingress_flow_count);
        a.uint(b"\"egress_flow_count\":", aggregate.egress_flow_count);
        a.uint(
            b"\"unknown_direction_flow_count\":",
            aggregate.unknown_direction_flow_count,
        );
        a.close();
    }
    o.close();
    Ok(())
}

fn write_policies(
    o: &mut Object<'_>,
    key: &[u8],
    policies: &[sightline_proto::flow::Policy],
) -> Result<(), Unsupported> {
    if policies.is_empty() {
        return Ok(());
    }
    generated(o.key(key), &policies)
}

fn write_l4(out: &mut Vec<u8>, l4: &sightline_proto::flow::Layer4) -> Result<(), Unsupported> {
    let mut o = Object::open(out);
    match &l4.protocol {
        Some(layer4::Protocol::Tcp(tcp)) => {
            let mut t = Object::open(o.key(b"\"TCP\":"));
            t.uint(b"\"source_port\":", tcp.source_port);
            t.uint(b"\"destination_port\":", tcp.destination_port);
            if let Some(flags) = &tcp.flags {
                let mut f = Object::open(t.key(b"\"flags\":"));
                f.bool(b"\"FIN\":", flags.fin);
                f.bool(b"\"SYN\":", flags.syn);
                f.bool(b"\"RST\":", flags.rst);
                f.bool(b"\"PSH\":", flags.psh);
                f.bool(b"\"ACK\":", flags.ack);
                f.bool(b"\"URG\":", flags.urg);
                f.bool(b"\"ECE\":", flags.ece);
                f.bool(b"\"CWR\":", flags.cwr);
                f.bool(b"\"NS\":", flags.ns);
                f.close();
            }
            t.close();
        }
        Some(layer4::Protocol::Udp(udp)) => {
            let mut u = Object::open(o.key(b"\"UDP\":"));
            u.uint(b"\"source_port\":", udp.source_port);
            u.uint(b"\"destination_port\":", udp.destination_port);
            u.close();
        }
        Some(layer4::Protocol::IcmPv4(icmp)) => o.generated(b"\"ICMPv4\":", Some(icmp))?,
        Some(layer4::Protocol::IcmPv6(icmp)) => o.generated(b"\"ICMPv6\":", Some(icmp))?,
        Some(layer4::Protocol::Sctp(sctp)) => o.generated(b"\"SCTP\":", Some(sctp))?,
        Some(layer4::Protocol::Vrrp(vrrp)) => o.generated(b"\"VRRP\":", Some(vrrp))?,
        Some(layer4::Protocol::Igmp(igmp)) => o.generated(b"\"IGMP\":", Some(igmp))?,
        None => {}
    }
    o.close();
    Ok(())
}

fn shared_endpoint(shared: &Shared<Endpoint>) -> &[u8] {
    shared.json(|endpoint| {
        let mut text = Vec::with_capacity(256);
        write_endpoint(&mut text, endpoint);
        text
    })
}

fn write_endpoint(out: &mut Vec<u8>, endpoint: &Endpoint) {
    let mut o = Object::open(out);
    o.uint(b"\"ID\":", endpoint.id);
    o.uint(b"\"identity\":", endpoint.identity);
    o.string(b"\"cluster_name\":", &endpoint.cluster_name);
    o.string(b"\"namespace\":", &endpoint.namespace);
    o.strings(b"\"labels\":", &endpoint.labels);
    o.string(b"\"pod_name\":", &endpoint.pod_name);
    if !endpoint.workloads.is_empty() {
        let out = o.key(b"\"workloads\":");
        out.push(b'[');
        for (i, workload) in endpoint.workloads.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let mut w = Object::open(out);
            w.string(b"\"name\":", &workload.name);
            w.string(b"\"kind\":", &workload.kind);
            w.close();
        }
        out.push(b']');
    }
    o.close();
}

fn write_service(out: &mut Vec<u8>, service: &Service) {
    let mut o = Object::open(out);
    o.string(b"\"name\":", &service.name);
    o.string(b"\"namespace\":", &service.namespace);
    o.close();
}

#[cfg(test)]
#[path = "flow_json_tests.rs"]
mod tests;
