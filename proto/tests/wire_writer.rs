//! The hand-written flow writer against prost: for flows with every field set (each
//! oneof alternative in turn, built from the API's own descriptors, so a field the
//! writer forgets fails here), what a decoder reads back is the same flow, and the
//! encoding is as long as prost's.

use prost::Message;
use prost::bytes::BytesMut;
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, Value};
use sightline_proto::flow::{Flow, Ip};
use sightline_proto::wire::{Skip, Writer, flow_fields, write_ip};

fn pool() -> DescriptorPool {
    DescriptorPool::decode(sightline_proto::FILE_DESCRIPTOR_SET).expect("descriptor set")
}

/// A value for every field of `descriptor`, nested messages filled `depth` levels
/// down; of each oneof only the alternative `variant` picks.
fn populated(descriptor: &MessageDescriptor, variant: usize, depth: usize) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    for field in descriptor.fields() {
        if let Some(oneof) = field.containing_oneof() {
            let alternatives: Vec<_> = oneof.fields().collect();
            if alternatives[variant % alternatives.len()].number() != field.number() {
                continue;
            }
        }
        let value = |n: usize| -> Option<Value> {
            Some(match field.kind() {
                Kind::Double => Value::F64(1.5 + n as f64),
                Kind::Float => Value::F32(2.5),
                // Negative and multi-byte values exercise sign extension and long varints.
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(-3 - n as i32),
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(-1_700_000_000_123),
                Kind::Uint32 | Kind::Fixed32 => Value::U32(300 + n as u32),
                Kind::Uint64 | Kind::Fixed64 => Value::U64(1 << 40),
                Kind::Bool => Value::Bool(true),
                Kind::String => Value::String(format!("{}-{n}", field.name())),
                Kind::Bytes => Value::Bytes(vec![0, 1, 2, n as u8].into()),
                Kind::Enum(e) => Value::EnumNumber(e.values().last().map_or(1, |v| v.number())),
                Kind::Message(m) if depth == 0 => {
                    let _ = m;
                    return None;
                }
                Kind::Message(m) => Value::Message(populated(&m, variant + n, depth - 1)),
            })
        };
        if field.is_map() {
            continue;
        }
        if field.is_list() {
            let items: Vec<Value> = (0..2).filter_map(value).collect();
            if !items.is_empty() {
                message.set_field(&field, Value::List(items));
            }
        } else if let Some(v) = value(0) {
            message.set_field(&field, v);
        }
    }
    message
}

fn fast_encoding(flow: &Flow) -> BytesMut {
    let mut out = BytesMut::new();
    flow_fields(flow, Skip::default(), &mut Writer::new(&mut out));
    out
}

#[test]
fn every_field_of_a_flow_survives_the_writer() {
    let descriptor = pool().get_message_by_name("flow.Flow").expect("flow.Flow");
    for variant in 0..8 {
        let dynamic = populated(&descriptor, variant, 4);
        let flow = Flow::decode(dynamic.encode_to_vec().as_slice()).expect("decodes as Flow");
        let ours = fast_encoding(&flow);
        let back = Flow::decode(&ours[..]).expect("our encoding decodes");
        assert_eq!(back, flow, "variant {variant}");
        assert_eq!(ours.len(), flow.encoded_len(), "variant {variant}: canonical length");
        // And no field went unread by the reflection side either.
        let reread = DynamicMessage::decode(descriptor.clone(), &ours[..]).expect("dynamic decode");
        assert_eq!(reread, flow.transcode_to_dynamic_or(&descriptor), "variant {variant}");
    }
}

/// Bodies whose length crosses one-, two- and three-byte varints move into place.
#[test]
fn nested_lengths_at_varint_boundaries() {
    let around = |n: usize| n.saturating_sub(3)..n + 3;
    let lengths = [0usize, 1]
        .into_iter()
        .chain(around(127))
        .chain(around(16_383))
        .chain(around(2_097_151));
    for text in lengths {
        let ip = Ip {
            source: "a".repeat(text),
            ..Ip::default()
        };
        let mut out = BytesMut::from(&b"prefix"[..]);
        write_ip(5, &ip, &mut Writer::new(&mut out));
        let mut expected = b"prefix".to_vec();
        prost::encoding::message::encode(5, &ip, &mut expected);
        assert!(out[..] == expected[..], "source of {text} bytes");
        let mut out = BytesMut::from(&b"prefix"[..]);
        Writer::new(&mut out).large_message(5, |w| w.string(1, &ip.source));
        assert!(out[..] == expected[..], "source of {text} bytes as a large message");
    }
}

trait TranscodeOr {
    fn transcode_to_dynamic_or(&self, descriptor: &MessageDescriptor) -> DynamicMessage;
}

impl TranscodeOr for Flow {
    fn transcode_to_dynamic_or(&self, descriptor: &MessageDescriptor) -> DynamicMessage {
        DynamicMessage::decode(descriptor.clone(), self.encode_to_vec().as_slice()).expect("prost's encoding")
    }
}

#[test]
fn reflection_sees_the_same_descriptor() {
    let descriptor = pool().get_message_by_name("flow.Flow").expect("flow.Flow");
    let dynamic = populated(&descriptor, 0, 1);
    assert_eq!(dynamic.descriptor().full_name(), "flow.Flow");
    assert!(
        descriptor
            .fields()
            .all(|f| f.is_map() || dynamic.has_field(&f) || f.containing_oneof().is_some())
    );
}
