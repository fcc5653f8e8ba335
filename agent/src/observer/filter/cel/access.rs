//! Reading `_flow.a.b.c` from a flow record. The fields filters usually name are
//! read straight from the record's accessors (enrichment and deferred fields
//! included) without building anything; any other path is read from the
//! complete flow as a dynamic message, built at most once per evaluation.

use std::borrow::Cow;
use std::cell::OnceCell;

use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, MessageDescriptor};
use sightline_proto::flow::{Service, layer4, layer7};

use super::types::Type;
use super::value::Value;
use crate::flow_record::FlowRecord;

/// Reads one field path without allocating (but for rendered addresses).
pub(super) type Getter = for<'a> fn(&'a FlowRecord) -> Value<'a>;
/// Whether one message-typed path is present.
pub(super) type Presence = fn(&FlowRecord) -> bool;

/// A field path resolved at compile time.
#[derive(Debug, Clone)]
pub(super) enum Access {
    Fast(Getter),
    /// Field descriptors from `flow.Flow` down, and the leaf's type.
    Dynamic(Vec<FieldDescriptor>, Type),
}

/// `has(path)`, resolved at compile time.
#[derive(Debug, Clone)]
pub(super) enum Has {
    Message(Presence),
    Scalar(Getter),
    Dynamic(Vec<FieldDescriptor>),
}

/// The flow being evaluated, and its dynamic form once a path needs it.
pub(super) struct FlowView<'a> {
    pub record: &'a FlowRecord,
    dynamic: OnceCell<Option<DynamicMessage>>,
    flow_message: &'a MessageDescriptor,
}

impl<'a> FlowView<'a> {
    pub(super) fn new(record: &'a FlowRecord, flow_message: &'a MessageDescriptor) -> Self {
        Self {
            record,
            dynamic: OnceCell::new(),
            flow_message,
        }
    }

    fn dynamic(&self) -> Option<&DynamicMessage> {
        self.dynamic
            .get_or_init(|| {
                let bytes = self.record.complete().encode_to_vec();
                DynamicMessage::decode(self.flow_message.clone(), bytes.as_slice()).ok()
            })
            .as_ref()
    }

    /// `None` when the flow could not be read as a dynamic message (a runtime error).
    pub(super) fn read(&self, access: &Access) -> Option<Value<'a>> {
        match access {
            Access::Fast(get) => Some(get(self.record)),
            Access::Dynamic(path, leaf) => dynamic_read(self.dynamic()?, path, leaf),
        }
    }

    pub(super) fn has(&self, has: &Has) -> Option<bool> {
        match has {
            Has::Message(present) => Some(present(self.record)),
            Has::Scalar(get) => Some(get(self.record).is_set()),
            Has::Dynamic(path) => {
                let (last, parents) = path.split_last()?;
                Some(walk(self.dynamic()?, parents).is_some_and(|parent| parent.has_field(last)))
            }
        }
    }
}

/// The message at `path`, or `None` when one on the way is unset (then every
/// field below has its default value).
fn walk<'m>(mut message: &'m DynamicMessage, path: &[FieldDescriptor]) -> Option<&'m DynamicMessage> {
    for field in path {
        if !message.has_field(field) {
            return None;
        }
        match message.get_field(field) {
            Cow::Borrowed(prost_reflect::Value::Message(next)) => message = next,
            _ => return None,
        }
    }
    Some(message)
}

fn dynamic_read(root: &DynamicMessage, path: &[FieldDescriptor], leaf: &Type) -> Option<Value<'static>> {
    let (last, parents) = path.split_last()?;
    let Some(parent) = walk(root, parents) else {
        return Some(default_of(leaf));
    };
    if let Type::Wrapper(_) = leaf {
        if !parent.has_field(last) {
            return Some(Value::Null);
        }
        return match parent.get_field(last).as_ref() {
            prost_reflect::Value::Message(wrapper) => Some(
                wrapper
                    .get_field_by_name("value")
                    .map_or(Value::Null, |v| convert(v.as_ref())),
            ),
            _ => None,
        };
    }
    Some(convert(parent.get_field(last).as_ref()))
}

fn default_of(leaf: &Type) -> Value<'static> {
    match leaf {
        Type::Bool => Value::Bool(false),
        Type::Int => Value::Int(0),
        Type::Uint => Value::Uint(0),
        Type::Double => Value::Double(0.0),
        Type::String => Value::Str(Cow::Borrowed("")),
        Type::Bytes => Value::Bytes(Cow::Borrowed(&[])),
        Type::List(_) => Value::List(Vec::new()),
        _ => Value::Null,
    }
}

fn convert(value: &prost_reflect::Value) -> Value<'static> {
    use prost_reflect::Value as V;
    match value {
        V::Bool(b) => Value::Bool(*b),
        V::I32(i) => Value::Int((*i).into()),
        V::I64(i) => Value::Int(*i),
        V::U32(u) => Value::Uint((*u).into()),
        V::U64(u) => Value::Uint(*u),
        V::F32(f) => Value::Double((*f).into()),
        V::F64(f) => Value::Double(*f),
        V::String(s) => Value::Str(Cow::Owned(s.clone())),
        V::Bytes(b) => Value::Bytes(Cow::Owned(b.to_vec())),
        V::EnumNumber(n) => Value::Int((*n).into()),
        V::List(items) => Value::List(items.iter().map(convert).collect()),
        // Messages and maps are rejected at compile time.
        V::Message(_) | V::Map(_) => Value::Null,
    }
}

/// Defines a [`Getter`] from a closure-like body.
macro_rules! getter {
    (|$r:ident| $body:expr) => {{
        fn get<'a>($r: &'a FlowRecord) -> Value<'a> {
            $body
        }
        get as Getter
    }};
}

fn text(s: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(s))
}

fn endpoint_field(path: &str, source: bool) -> Option<Getter> {
    // Each side gets its own getters: a fn pointer cannot capture the side.
    macro_rules! fields {
        ($side:expr) => {
            match path {
                "ID" => getter!(|r| Value::Uint($side(r).map_or(0, |e| e.id).into())),
                "identity" => getter!(|r| Value::Uint($side(r).map_or(0, |e| e.identity).into())),
                "namespace" => getter!(|r| text($side(r).map_or("", |e| &e.namespace))),
                "pod_name" => getter!(|r| text($side(r).map_or("", |e| &e.pod_name))),
                "cluster_name" => getter!(|r| text($side(r).map_or("", |e| &e.cluster_name))),
                "labels" => getter!(|r| Value::Strings($side(r).map_or(&[], |e| &e.labels))),
                _ => return None,
            }
        };
    }
    Some(if source {
        fields!(FlowRecord::source)
    } else {
        fields!(FlowRecord::destination)
    })
}

fn service_field(path: &str, source: bool) -> Option<Getter> {
    fn of(service: Option<&Service>, name: bool) -> Value<'_> {
        text(service.map_or("", |s| if name { &s.name } else { &s.namespace }))
    }
    Some(match (path, source) {
        ("name", true) => getter!(|r| of(r.source_service(), true)),
        ("namespace", true) => getter!(|r| of(r.source_service(), false)),
        ("name", false) => getter!(|r| of(r.destination_service(), true)),
        ("namespace", false) => getter!(|r| of(r.destination_service(), false)),
        _ => return None,
    })
}

fn ports(r: &FlowRecord) -> Option<(&str, u32, u32)> {
    match r.l4.as_ref()?.protocol.as_ref()? {
        layer4::Protocol::Tcp(l4) => Some(("TCP", l4.source_port, l4.destination_port)),
        layer4::Protocol::Udp(l4) => Some(("UDP", l4.source_port, l4.destination_port)),
        layer4::Protocol::Sctp(l4) => Some(("SCTP", l4.source_port, l4.destination_port)),
        _ => None,
    }
}

/// The port of `protocol` (the oneof member the path names): 0 when the flow's
/// layer 4 is another protocol, as reading an unset member gives its default.
fn port(r: &FlowRecord, protocol: &str, source: bool) -> Value<'static> {
    let port = ports(r)
        .filter(|(have, ..)| *have == protocol)
        .map_or(0, |(_, s, d)| if source { s } else { d });
    Value::Uint(port.into())
}

fn dns(r: &FlowRecord) -> Option<&sightline_proto::flow::Dns> {
    match r.l7.as_ref()?.record.as_ref()? {
        layer7::Record::Dns(dns) => Some(dns),
        _ => None,
    }
}

fn http(r: &FlowRecord) -> Option<&sightline_proto::flow::Http> {
    match r.l7.as_ref()?.record.as_ref()? {
        layer7::Record::Http(http) => Some(http),
        _ => None,
    }
}

fn address(addr: Option<std::net::IpAddr>) -> Value<'static> {
    Value::Str(addr.map_or(Cow::Borrowed(""), |a| Cow::Owned(a.to_string())))
}

/// The getter of a path filters commonly name, if it has one.
pub(super) fn fast(path: &[&str]) -> Option<Getter> {
    Some(match path {
        ["verdict"] => getter!(|r| Value::Int(r.verdict.into())),
        ["drop_reason_desc"] => getter!(|r| Value::Int(r.drop_reason_desc.into())),
        ["traffic_direction"] => getter!(|r| Value::Int(r.traffic_direction.into())),
        ["Type"] => getter!(|r| Value::Int(r.r#type.into())),
        ["node_name"] => getter!(|r| text(r.node_name())),
        ["uuid"] => getter!(|r| Value::Str(r.uuid())),
        ["node_labels"] => getter!(|r| Value::Strings(&r.node_labels)),
        ["source_names"] => getter!(|r| Value::Strings(r.source_names())),
        ["destination_names"] => getter!(|r| Value::Strings(r.destination_names())),
        ["is_reply"] => getter!(|r| r.is_reply.as_ref().map_or(Value::Null, |b| Value::Bool(b.value))),
        ["source", field] => endpoint_field(field, true)?,
        ["destination", field] => endpoint_field(field, false)?,
        ["source_service", field] => service_field(field, true)?,
        ["destination_service", field] => service_field(field, false)?,
        ["IP", "source"] => getter!(|r| address(r.ip_addresses().0)),
        ["IP", "destination"] => getter!(|r| address(r.ip_addresses().1)),
        ["IP", "ipVersion"] => getter!(|r| Value::Int(r.ip_version().into())),
        ["IP", "encrypted"] => getter!(|r| Value::Bool(r.ip.as_ref().is_some_and(|ip| ip.encrypted))),
        ["l4", "TCP", "source_port"] => getter!(|r| port(r, "TCP", true)),
        ["l4", "TCP", "destination_port"] => getter!(|r| port(r, "TCP", false)),
        ["l4", "UDP", "source_port"] => getter!(|r| port(r, "UDP", true)),
        ["l4", "UDP", "destination_port"] => getter!(|r| port(r, "UDP", false)),
        ["l4", "SCTP", "source_port"] => getter!(|r| port(r, "SCTP", true)),
        ["l4", "SCTP", "destination_port"] => getter!(|r| port(r, "SCTP", false)),
        ["l7", "type"] => getter!(|r| Value::Int(r.l7.as_ref().map_or(0, |l7| l7.r#type).into())),
        ["l7", "latency_ns"] => getter!(|r| Value::Uint(r.l7.as_ref().map_or(0, |l7| l7.latency_ns))),
        ["l7", "dns", "query"] => getter!(|r| text(dns(r).map_or("", |d| &d.query))),
        ["l7", "dns", "rcode"] => getter!(|r| Value::Uint(dns(r).map_or(0, |d| d.rcode).into())),
        ["l7", "dns", "ips"] => getter!(|r| Value::Strings(dns(r).map_or(&[], |d| &d.ips))),
        ["l7", "dns", "qtypes"] => getter!(|r| Value::Strings(dns(r).map_or(&[], |d| &d.qtypes))),
        ["l7", "http", "code"] => getter!(|r| Value::Uint(http(r).map_or(0, |h| h.code).into())),
        ["l7", "http", "method"] => getter!(|r| text(http(r).map_or("", |h| &h.method))),
        ["l7", "http", "url"] => getter!(|r| text(http(r).map_or("", |h| &h.url))),
        ["event_type", "type"] => getter!(|r| Value::Int(r.event_type.as_ref().map_or(0, |t| t.r#type).into())),
        ["event_type", "sub_type"] => {
            getter!(|r| Value::Int(r.event_type.as_ref().map_or(0, |t| t.sub_type).into()))
        }
        ["interface", "name"] => getter!(|r| text(r.interface().map_or("", |(_, name)| name))),
        ["interface", "index"] => getter!(|r| Value::Uint(r.interface().map_or(0, |(index, _)| index).into())),
        _ => return None,
    })
}

/// The presence test of a message-typed path filters commonly name, if it has one.
pub(super) fn fast_presence(path: &[&str]) -> Option<Presence> {
    Some(match path {
        ["source"] => |r| r.source().is_some(),
        ["destination"] => |r| r.destination().is_some(),
        ["source_service"] => |r| r.source_service().is_some(),
        ["destination_service"] => |r| r.destination_service().is_some(),
        ["IP"] => |r| r.ip.is_some() || r.addresses.is_some(),
        ["l4"] => |r| r.l4.is_some(),
        ["l7"] => |r| r.l7.is_some(),
        ["l4", "TCP"] => |r| ports(r).is_some_and(|(p, ..)| p == "TCP"),
        ["l4", "UDP"] => |r| ports(r).is_some_and(|(p, ..)| p == "UDP"),
        ["l4", "SCTP"] => |r| ports(r).is_some_and(|(p, ..)| p == "SCTP"),
        ["l7", "dns"] => |r| dns(r).is_some(),
        ["l7", "http"] => |r| http(r).is_some(),
        _ => return None,
    })
}
