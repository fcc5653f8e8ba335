//! `GetFlowsRequest.field_mask`: keeps only the listed `flow.Flow` paths.
//!
//! Paths are resolved once per request against the Hubble descriptor into a tree of
//! field numbers; each flow is then masked at the wire level (encode, copy the kept
//! fields, decode), which is generic over every Flow field. Like Hubble, a nested
//! path makes its (singular, non-oneof) parent message present even when empty.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{WireType, decode_key, decode_varint, encode_key, encode_varint};
use prost_reflect::{DescriptorPool, MessageDescriptor};
use sightline_proto::flow::Flow;

/// Why a `field_mask` was refused; GetFlows answers it as InvalidArgument.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FieldMaskError {
    /// A dotted path names no field of `flow.Flow` (the whole path is given).
    #[error("invalid field_mask path {0:?}: no such field in flow.Flow")]
    UnknownPath(String),
    /// The compiled-in descriptor set is unreadable or lacks `flow.Flow`: a build
    /// defect, not a client error.
    #[error("the Hubble descriptor set could not be loaded: {0}")]
    Descriptor(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All,
    Sub {
        children: BTreeMap<u32, Node>,
        preallocate: bool,
    },
}

/// A compiled mask; `None` paths = keep everything.
#[derive(Debug, Clone, Default)]
pub struct FlowMask {
    root: Option<BTreeMap<u32, Node>>,
}

fn flow_descriptor() -> Result<MessageDescriptor, FieldMaskError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    let pool = POOL
        .get_or_init(|| DescriptorPool::decode(sightline_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| FieldMaskError::Descriptor(e.clone()))?;
    pool.get_message_by_name("flow.Flow")
        .ok_or_else(|| FieldMaskError::Descriptor("flow.Flow missing".into()))
}

impl FlowMask {
    /// Resolves `paths` (protobuf field names joined by dots, as in Hubble's
    /// `field_mask`) once per request; an empty list keeps every field.
    pub fn compile(paths: &[String]) -> Result<Self, FieldMaskError> {
        if paths.is_empty() {
            return Ok(Self::default());
        }
        let flow = flow_descriptor()?;
        let mut root = BTreeMap::new();
        for path in paths {
            insert(&mut root, &flow, path)?;
        }
        Ok(Self { root: Some(root) })
    }

    /// True when the mask keeps everything, so callers can send the shared encoding.
    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// A copy of `flow` holding only the kept fields (the whole flow for an empty mask).
    pub fn apply(&self, flow: &Flow) -> Flow {
        let Some(root) = &self.root else { return flow.clone() };
        let encoded = flow.encode_to_vec();
        let mut out = Vec::with_capacity(encoded.len());
        filter_message(&encoded, root, &mut out);
        // The input was a valid message and we only dropped whole fields.
        Flow::decode(out.as_slice()).unwrap_or_default()
    }

    /// [`apply`](Self::apply) to a flow given in wire form (a `flow.Flow` body):
    /// only the kept fields are decoded.
    pub fn apply_encoded(&self, body: &[u8]) -> Flow {
        let Some(root) = &self.root else {
            return Flow::decode(body).unwrap_or_default();
        };
        let mut out = Vec::with_capacity(body.len().min(1024));
        filter_message(body, root, &mut out);
        Flow::decode(out.as_slice()).unwrap_or_default()
    }
}

fn insert(root: &mut BTreeMap<u32, Node>, flow: &MessageDescriptor, path: &str) -> Result<(), FieldMaskError> {
    let unknown = || FieldMaskError::UnknownPath(path.to_owned());
    let segments: Vec<&str> = path.split('.').collect();
    let mut message = flow.clone();
    let mut level = root;
    for (i, segment) in segments.iter().enumerate() {
        let field = message.get_field_by_name(segment).ok_or_else(unknown)?;
        let last = i + 1 == segments.len();
        if last {
            level.insert(field.number(), Node::All);
            return Ok(());
        }
        let child = field.kind().as_message().cloned().ok_or_else(unknown)?;
        let preallocate = !field.is_list() && field.containing_oneof().is_none();
        let node = level.entry(field.number()).or_insert_with(|| Node::Sub {
            children: BTreeMap::new(),
            preallocate,
        });
        match node {
            Node::All => return Ok(()),
            Node::Sub { children, .. } => level = children,
        }
        message = child;
    }
    Err(unknown())
}

/// Copies the fields of `input` selected by `mask` into `out`.
fn filter_message(mut input: &[u8], mask: &BTreeMap<u32, Node>, out: &mut Vec<u8>) {
    let mut seen = Vec::new();
    while input.has_remaining() {
        let start = input;
        let Ok((number, wire_type)) = decode_key(&mut input) else {
            return;
        };
        let value_start = input;
        if skip_value(&mut input, wire_type).is_none() {
            return;
        }
        let field_len = start.len() - input.len();
        match mask.get(&number) {
            Some(Node::All) => out.extend_from_slice(&start[..field_len]),
            Some(Node::Sub { children, .. }) if wire_type == WireType::LengthDelimited => {
                let mut payload = value_start;
                let Ok(len) = decode_varint(&mut payload) else { return };
                let payload = &payload[..usize::try_from(len).unwrap_or(0)];
                let mut inner = Vec::with_capacity(payload.len());
                filter_message(payload, children, &mut inner);
                encode_key(number, WireType::LengthDelimited, out);
                encode_varint(inner.len() as u64, out);
                out.put_slice(&inner);
                seen.push(number);
            }
            _ => {}
        }
    }
    for (number, node) in mask {
        if let Node::Sub { preallocate: true, .. } = node
            && !seen.contains(number)
        {
            encode_key(*number, WireType::LengthDelimited, out);
            encode_varint(0, out);
        }
    }
}

fn skip_value(input: &mut &[u8], wire_type: WireType) -> Option<()> {
    let len = match wire_type {
        WireType::Varint => return decode_varint(input).ok().map(|_| ()),
        WireType::SixtyFourBit => 8,
        WireType::ThirtyTwoBit => 4,
        WireType::LengthDelimited => usize::try_from(decode_varint(input).ok()?).ok()?,
        WireType::StartGroup | WireType::EndGroup => return None,
    };
    (input.len() >= len).then(|| input.advance(len))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sightline_proto::flow::{Endpoint, Ip, Layer4, Tcp, layer4};

    fn flow() -> Flow {
        Flow {
            node_name: "n1".into(),
            uuid: "u".into(),
            ip: Some(Ip {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                ..Default::default()
            }),
            source: Some(Box::new(Endpoint {
                identity: 7,
                pod_name: "a".into(),
                namespace: "ns".into(),
                ..Default::default()
            })),
            l4: Some(Layer4 {
                protocol: Some(layer4::Protocol::Tcp(Tcp {
                    source_port: 1,
                    destination_port: 80,
                    flags: None,
                })),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_listed_paths_only() {
        let mask = FlowMask::compile(&["source.identity".into(), "l4".into(), "IP.source".into()]).unwrap();
        let masked = mask.apply(&flow());
        assert_eq!(
            masked.source,
            Some(Box::new(Endpoint {
                identity: 7,
                ..Default::default()
            }))
        );
        assert_eq!(masked.l4, flow().l4);
        assert_eq!(
            masked.ip,
            Some(Ip {
                source: "10.0.0.1".into(),
                ..Default::default()
            })
        );
        assert_eq!(masked.uuid, "");
        assert_eq!(masked.node_name, "");
    }

    #[test]
    fn nested_paths_preallocate_parents_and_prefixes_win() {
        let mask =
            FlowMask::compile(&["destination.pod_name".into(), "source".into(), "source.identity".into()]).unwrap();
        let masked = mask.apply(&flow());
        assert_eq!(masked.destination, Some(Box::default()));
        assert_eq!(masked.source, flow().source);
    }

    #[test]
    fn unknown_paths_are_rejected() {
        assert_eq!(
            FlowMask::compile(&["nope".into()]).unwrap_err(),
            FieldMaskError::UnknownPath("nope".into())
        );
        assert!(FlowMask::compile(&["uuid.x".into()]).is_err());
        assert!(FlowMask::compile(&[]).unwrap().is_empty());
    }
}
