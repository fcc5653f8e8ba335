//! FlowFilter compilation and matching with Hubble's semantics (see
//! `docs/observer.md`): whitelist = OR of filters (empty = all), blacklist = OR
//! (empty = none), AND across the populated fields of one filter, OR within a field.
//!
//! A request's filters are compiled once into predicate lists; filters that differ
//! in one value-list field are merged, so N port filters cost one lookup.

mod any_of;
mod cel;
mod ip;
mod labels;
mod names;
mod predicate;

use std::sync::Arc;

use regex::RegexSet;
use sightline_proto::flow::{EventTypeFilter, FlowFilter};

use crate::event::Event;
use crate::flow_record::FlowRecord;
use any_of::AnyOf;
pub(crate) use predicate::{HttpStatus, IpField, PortSet, Predicate, Side};
use predicate::{enum_bits, protocol, tcp_flag_bits};

/// Monitor message type of L7 (access log) events; HTTP filters need it.
const L7_EVENT_TYPE: i32 = 129;

/// A FlowFilter value that cannot be compiled; GetFlows answers it as InvalidArgument
/// with this text.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid filter {field}={value:?}: {reason}")]
pub struct FilterError {
    /// The FlowFilter field, by its proto name (`source_ip`, `http_path`, ...).
    pub field: &'static str,
    /// The offending value as the client sent it (empty when the value was empty).
    pub value: String,
    /// What is wrong with it, e.g. the regex or CIDR parser's message.
    pub reason: String,
}

impl FilterError {
    fn invalid(field: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            field,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// One FlowFilter: every predicate must hold.
#[derive(Debug, Clone, Default)]
pub struct CompiledFilter {
    predicates: Vec<Predicate>,
}

impl CompiledFilter {
    /// Whether `event` passes this one filter. A non-flow event can only pass a filter
    /// whose fields are all `event_type`; lost-event notices pass any such filter.
    #[inline]
    pub fn matches(&self, event: &Event) -> bool {
        match event {
            Event::Flow(flow) => self.matches_flow(flow),
            other => self.predicates.iter().all(|p| p.matches_other(other)),
        }
    }

    /// Whether `flow` satisfies every populated field of the filter.
    #[inline]
    pub fn matches_flow(&self, flow: &FlowRecord) -> bool {
        self.predicates.iter().all(|p| p.matches(flow))
    }

    fn predicates(&self) -> &[Predicate] {
        &self.predicates
    }
}

/// Whitelist minus blacklist.
#[derive(Debug, Clone, Default)]
pub struct FilterSet {
    whitelist: AnyOf,
    blacklist: AnyOf,
    /// The whole set when it is one predicate (after merging): no list walking.
    single: Option<Predicate>,
}

impl FilterSet {
    /// Compiles a request's `whitelist` and `blacklist` once; the first invalid value
    /// in either list fails the whole request. Two empty lists match everything.
    pub fn compile(whitelist: &[FlowFilter], blacklist: &[FlowFilter]) -> Result<Self, FilterError> {
        let compile_all = |list: &[FlowFilter]| {
            list.iter()
                .map(compile)
                .collect::<Result<Vec<CompiledFilter>, FilterError>>()
        };
        let whitelist = merge_single_field(compile_all(whitelist)?);
        let blacklist = merge_single_field(compile_all(blacklist)?);
        let single = match (whitelist.as_slice(), blacklist.is_empty()) {
            ([only], true) if only.predicates.len() == 1 => only.predicates.first().cloned(),
            _ => None,
        };
        Ok(Self {
            whitelist: AnyOf::new(whitelist),
            blacklist: AnyOf::new(blacklist),
            single,
        })
    }

    /// Whether `event` is in the whitelist (or it is empty) and not in the blacklist.
    #[inline]
    pub fn matches(&self, event: &Event) -> bool {
        match event {
            Event::Flow(flow) => self.matches_flow(flow),
            other => (self.whitelist.is_empty() || self.whitelist.any_event(other)) && !self.blacklist.any_event(other),
        }
    }

    /// [`matches`](Self::matches) for a flow: the per-flow path of GetFlows and metrics.
    #[inline]
    pub fn matches_flow(&self, flow: &FlowRecord) -> bool {
        if let Some(predicate) = &self.single {
            return predicate.matches(flow);
        }
        (self.whitelist.is_empty() || self.whitelist.any_flow(flow)) && !self.blacklist.any_flow(flow)
    }
}

/// Folds OR-ed filters that differ in one mergeable field into one filter:
/// `(A and port 80) or (A and port 443)` = `A and port in {80, 443}`, so N filters of
/// one shape cost one evaluation. Filters are compared by their compiled form.
fn merge_single_field(filters: Vec<CompiledFilter>) -> Vec<CompiledFilter> {
    let mut out: Vec<(CompiledFilter, Vec<String>)> = Vec::with_capacity(filters.len());
    'next: for filter in filters {
        if filter.predicates.is_empty() {
            // `{}` matches everything: the OR is decided.
            return vec![filter];
        }
        let keys: Vec<String> = filter.predicates.iter().map(|p| format!("{p:?}")).collect();
        for (existing, existing_keys) in out.iter_mut() {
            if existing_keys.len() != keys.len() {
                continue;
            }
            let differing: Vec<usize> = (0..keys.len()).filter(|&i| existing_keys[i] != keys[i]).collect();
            match differing.as_slice() {
                [] => continue 'next,
                [i] if existing.predicates[*i].merge(filter.predicates[*i].clone()).is_ok() => {
                    existing_keys[*i] = format!("{:?}", existing.predicates[*i]);
                    continue 'next;
                }
                _ => {}
            }
        }
        out.push((filter, keys));
    }
    out.into_iter().map(|(filter, _)| filter).collect()
}

fn regex_set(field: &'static str, patterns: &[String]) -> Result<RegexSet, FilterError> {
    for p in patterns {
        regex::Regex::new(p).map_err(|e| FilterError::invalid(field, p, e.to_string()))?;
    }
    RegexSet::new(patterns).map_err(|e| FilterError::invalid(field, &patterns.join(","), e.to_string()))
}

fn ports(field: &'static str, values: &[String]) -> Result<PortSet, FilterError> {
    let parsed = values
        .iter()
        .map(|v| {
            // Digits only, as Go's ParseUint in Hubble: Rust's parser would also take "+80".
            v.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| v.parse::<u16>().ok())
                .flatten()
                .ok_or_else(|| FilterError::invalid(field, v, "not a port number (0-65535)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PortSet::new(parsed))
}

fn http_status(value: &str) -> Result<HttpStatus, FilterError> {
    let bytes = value.as_bytes();
    let first_ok = bytes.first().is_some_and(|b| (b'1'..=b'5').contains(b));
    match bytes {
        [_, b'0'..=b'9', b'0'..=b'9'] if first_ok => Ok(HttpStatus::Exact(value.to_owned())),
        [_, b'+'] if first_ok => Ok(HttpStatus::Prefix(value[..1].to_owned())),
        [_, b'0'..=b'9', b'+'] if first_ok => Ok(HttpStatus::Prefix(value[..2].to_owned())),
        _ => Err(FilterError::invalid(
            "http_status_code",
            value,
            "expected a status code like 404 or a prefix like 5+ or 40+",
        )),
    }
}

fn protocol_bits(value: &str) -> Result<u16, FilterError> {
    use protocol::*;
    Ok(match value.to_lowercase().as_str() {
        "icmp" => ICMPV4 | ICMPV6,
        "icmpv4" => ICMPV4,
        "icmpv6" => ICMPV6,
        "tcp" => TCP,
        "udp" => UDP,
        "sctp" => SCTP,
        "vrrp" => VRRP,
        "igmp" => IGMP,
        "dns" => DNS,
        "http" => HTTP,
        "kafka" => KAFKA,
        _ => return Err(FilterError::invalid("protocol", value, "unknown protocol")),
    })
}

fn non_empty(field: &'static str, values: &[String]) -> Result<Vec<String>, FilterError> {
    match values.iter().find(|v| v.is_empty()) {
        Some(_) => Err(FilterError::invalid(field, "", "value must not be empty")),
        None => Ok(values.to_vec()),
    }
}

fn allows_http(event_types: &[EventTypeFilter]) -> bool {
    event_types.is_empty() || event_types.iter().any(|e| e.r#type == L7_EVENT_TYPE)
}

fn bool_bits(values: &[bool]) -> u8 {
    values.iter().fold(0, |acc, v| acc | if *v { 2 } else { 1 })
}

/// Compiles one FlowFilter in Hubble's `DefaultFilters` order.
pub fn compile(f: &FlowFilter) -> Result<CompiledFilter, FilterError> {
    use Predicate as P;
    let mut p = Vec::new();
    if let Some(experimental) = f.experimental.as_ref()
        && !experimental.cel_expression.is_empty()
    {
        p.push(P::Cel(Arc::new(cel::CelFilter::compile(&experimental.cel_expression)?)));
    }
    if !f.uuid.is_empty() {
        p.push(P::Uuid(f.uuid.clone()));
    }
    if !f.event_type.is_empty() {
        p.push(P::EventType(f.event_type.clone()));
    }
    if !f.verdict.is_empty() {
        p.push(P::Verdict(enum_bits(&f.verdict)));
    }
    if !f.drop_reason_desc.is_empty() {
        p.push(P::DropReasonDesc(f.drop_reason_desc.clone()));
    }
    if !f.reply.is_empty() {
        p.push(P::Reply(bool_bits(&f.reply)));
    }
    if !f.encrypted.is_empty() {
        p.push(P::Encrypted(bool_bits(&f.encrypted)));
    }
    if !f.source_identity.is_empty() {
        p.push(P::Identity(Side::Source, f.source_identity.clone()));
    }
    if !f.destination_identity.is_empty() {
        p.push(P::Identity(Side::Destination, f.destination_identity.clone()));
    }
    if !f.protocol.is_empty() {
        let bits = f
            .protocol
            .iter()
            .map(|v| protocol_bits(v))
            .collect::<Result<Vec<_>, _>>()?;
        p.push(P::Protocol(bits.into_iter().fold(0, |a, b| a | b)));
    }
    for (field, values, which) in [
        ("source_ip", &f.source_ip, IpField::Source),
        ("destination_ip", &f.destination_ip, IpField::Destination),
        ("source_ip_xlated", &f.source_ip_xlated, IpField::SourceXlated),
    ] {
        if !values.is_empty() {
            p.push(P::Ip(which, ip::IpSet::parse(field, values)?));
        }
    }
    for (field, values, side, service) in [
        ("source_pod", &f.source_pod, Side::Source, false),
        ("destination_pod", &f.destination_pod, Side::Destination, false),
        ("source_service", &f.source_service, Side::Source, true),
        ("destination_service", &f.destination_service, Side::Destination, true),
    ] {
        if !values.is_empty() {
            let parsed = values
                .iter()
                .map(|v| names::NamespacedPrefix::parse(field, v))
                .collect::<Result<Vec<_>, _>>()?;
            p.push(if service {
                P::Service(side, parsed)
            } else {
                P::Pod(side, parsed)
            });
        }
    }
    for (values, side) in [
        (&f.source_workload, Side::Source),
        (&f.destination_workload, Side::Destination),
    ] {
        if !values.is_empty() {
            p.push(P::Workload(
                side,
                values.iter().map(|w| (w.name.clone(), w.kind.clone())).collect(),
            ));
        }
    }
    for (field, values, side) in [
        ("source_fqdn", &f.source_fqdn, Side::Source),
        ("destination_fqdn", &f.destination_fqdn, Side::Destination),
    ] {
        if !values.is_empty() {
            p.push(P::Fqdn(side, names::fqdn_regex(field, values)?));
        }
    }
    let selectors = |field: &'static str, values: &[String]| {
        values
            .iter()
            .map(|v| labels::Selector::parse(field, v))
            .collect::<Result<Vec<_>, _>>()
    };
    if !f.source_label.is_empty() {
        p.push(P::Label(Side::Source, selectors("source_label", &f.source_label)?));
    }
    if !f.destination_label.is_empty() {
        p.push(P::Label(
            Side::Destination,
            selectors("destination_label", &f.destination_label)?,
        ));
    }
    if !f.node_labels.is_empty() {
        p.push(P::NodeLabels(selectors("node_labels", &f.node_labels)?));
    }
    if !f.source_port.is_empty() {
        p.push(P::Port(Side::Source, ports("source_port", &f.source_port)?));
    }
    if !f.destination_port.is_empty() {
        p.push(P::Port(
            Side::Destination,
            ports("destination_port", &f.destination_port)?,
        ));
    }
    compile_http(f, &mut p)?;
    if !f.tcp_flags.is_empty() {
        p.push(P::TcpFlags(f.tcp_flags.iter().map(tcp_flag_bits).collect()));
    }
    if !f.node_name.is_empty() {
        p.push(P::NodeName(names::node_name_regex("node_name", &f.node_name)?));
    }
    if !f.source_cluster_name.is_empty() {
        p.push(P::ClusterName(
            Side::Source,
            non_empty("source_cluster_name", &f.source_cluster_name)?,
        ));
    }
    if !f.destination_cluster_name.is_empty() {
        p.push(P::ClusterName(
            Side::Destination,
            non_empty("destination_cluster_name", &f.destination_cluster_name)?,
        ));
    }
    if !f.ip_version.is_empty() {
        p.push(P::IpVersion(enum_bits(&f.ip_version)));
    }
    if !f.trace_id.is_empty() {
        p.push(P::TraceId(f.trace_id.clone()));
    }
    if !f.traffic_direction.is_empty() {
        p.push(P::TrafficDirection(enum_bits(&f.traffic_direction)));
    }
    if !f.interface.is_empty() {
        p.push(P::Interface(
            f.interface.iter().map(|i| (i.index, i.name.clone())).collect(),
        ));
    }
    if !f.ip_trace_id.is_empty() {
        p.push(P::IpTraceId(f.ip_trace_id.clone()));
    }
    // AND is commutative: evaluate cheap fields first.
    p.sort_by_key(Predicate::cost);
    Ok(CompiledFilter { predicates: p })
}

fn compile_http(f: &FlowFilter, p: &mut Vec<Predicate>) -> Result<(), FilterError> {
    use Predicate as P;
    let http_fields: [(&'static str, bool, String); 5] = [
        (
            "http_status_code",
            !f.http_status_code.is_empty(),
            f.http_status_code.join(","),
        ),
        ("http_method", !f.http_method.is_empty(), f.http_method.join(",")),
        ("http_path", !f.http_path.is_empty(), f.http_path.join(",")),
        ("http_url", !f.http_url.is_empty(), f.http_url.join(",")),
        ("http_header", !f.http_header.is_empty(), String::new()),
    ];
    if let Some((field, _, value)) = http_fields.iter().find(|(_, set, _)| *set)
        && !allows_http(&f.event_type)
    {
        return Err(FilterError::invalid(
            field,
            value,
            "filtering by http requires the event type filter to only match 'l7' events",
        ));
    }
    if !f.http_status_code.is_empty() {
        p.push(P::HttpStatus(
            f.http_status_code
                .iter()
                .map(|v| http_status(v))
                .collect::<Result<_, _>>()?,
        ));
    }
    if !f.http_method.is_empty() {
        p.push(P::HttpMethod(f.http_method.clone()));
    }
    if !f.http_path.is_empty() {
        p.push(P::HttpPath(regex_set("http_path", &f.http_path)?));
    }
    if !f.http_url.is_empty() {
        p.push(P::HttpUrl(regex_set("http_url", &f.http_url)?));
    }
    if !f.http_header.is_empty() {
        p.push(P::HttpHeader(
            f.http_header.iter().map(|h| (h.key.clone(), h.value.clone())).collect(),
        ));
    }
    if !f.dns_query.is_empty() {
        p.push(P::DnsQuery(regex_set("dns_query", &f.dns_query)?));
    }
    Ok(())
}
