//! CEL types of `flow.Flow` fields, as cel-go's checker sees a protobuf message:
//! 32- and 64-bit integers are `int` or `uint` by signedness, enums are `int`,
//! wrapper messages are nullable scalars.

use std::fmt;
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Type {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    /// The element type of an empty list literal: compatible with everything.
    Dyn,
    List(Box<Type>),
    Message(MessageDescriptor),
    /// `google.protobuf.BoolValue` and friends: the scalar, or `null` when unset.
    Wrapper(Box<Type>),
    /// A field of a type this evaluator does not handle (timestamps, maps, `Any`).
    Unsupported(String),
}

impl Type {
    /// The type a value of this type is used as where a scalar is expected.
    pub(super) fn unwrapped(&self) -> &Type {
        match self {
            Type::Wrapper(inner) => inner,
            other => other,
        }
    }

    pub(super) fn is_numeric(&self) -> bool {
        matches!(self.unwrapped(), Type::Int | Type::Uint | Type::Double | Type::Dyn)
    }

    /// Whether `==` between the two type-checks (cel-go's `_==_(A, A)` overload).
    pub(super) fn comparable_with(&self, other: &Type) -> bool {
        match (self, other) {
            (Type::Dyn, _) | (_, Type::Dyn) => true,
            (Type::Null, Type::Wrapper(_) | Type::Null) | (Type::Wrapper(_), Type::Null) => true,
            (Type::List(a), Type::List(b)) => a.comparable_with(b),
            (Type::Message(a), Type::Message(b)) => a == b,
            (a, b) => {
                let (a, b) = (a.unwrapped(), b.unwrapped());
                !matches!(a, Type::Wrapper(_) | Type::Unsupported(_)) && a == b
            }
        }
    }

    /// Whether `<` between the two type-checks: numbers with numbers (cel-go's
    /// cross-type numeric ordering), otherwise the same scalar type.
    pub(super) fn orderable_with(&self, other: &Type) -> bool {
        let (a, b) = (self.unwrapped(), other.unwrapped());
        match (a, b) {
            (Type::Dyn, _) | (_, Type::Dyn) => true,
            _ if a.is_numeric() && b.is_numeric() => true,
            (Type::String, Type::String) | (Type::Bytes, Type::Bytes) | (Type::Bool, Type::Bool) => true,
            _ => false,
        }
    }

    pub(super) fn is_bool(&self) -> bool {
        matches!(self.unwrapped(), Type::Bool | Type::Dyn)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::Uint => f.write_str("uint"),
            Type::Double => f.write_str("double"),
            Type::String => f.write_str("string"),
            Type::Bytes => f.write_str("bytes"),
            Type::Null => f.write_str("null_type"),
            Type::Dyn => f.write_str("dyn"),
            Type::List(element) => write!(f, "list({element})"),
            Type::Message(message) => f.write_str(message.full_name()),
            Type::Wrapper(inner) => write!(f, "wrapper({inner})"),
            Type::Unsupported(name) => f.write_str(name),
        }
    }
}

/// The Hubble descriptor pool (decoded once per process).
pub(super) fn pool() -> Result<&'static DescriptorPool, String> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(sightline_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

pub(super) fn flow_message() -> Result<MessageDescriptor, String> {
    pool()?
        .get_message_by_name("flow.Flow")
        .ok_or_else(|| "flow.Flow is missing from the Hubble descriptor set".to_owned())
}

pub(super) fn field_type(field: &FieldDescriptor) -> Type {
    if field.is_map() {
        return Type::Unsupported(format!("map field {}", field.name()));
    }
    let element = kind_type(field.kind());
    if field.is_list() {
        Type::List(Box::new(element))
    } else {
        element
    }
}

fn kind_type(kind: Kind) -> Type {
    match kind {
        Kind::Double | Kind::Float => Type::Double,
        Kind::Int32 | Kind::Int64 | Kind::Sint32 | Kind::Sint64 | Kind::Sfixed32 | Kind::Sfixed64 => Type::Int,
        Kind::Uint32 | Kind::Uint64 | Kind::Fixed32 | Kind::Fixed64 => Type::Uint,
        Kind::Bool => Type::Bool,
        Kind::String => Type::String,
        Kind::Bytes => Type::Bytes,
        Kind::Enum(_) => Type::Int,
        Kind::Message(message) => {
            let wrapped = |inner: Type| Type::Wrapper(Box::new(inner));
            match message.full_name() {
                "google.protobuf.BoolValue" => wrapped(Type::Bool),
                "google.protobuf.Int32Value" | "google.protobuf.Int64Value" => wrapped(Type::Int),
                "google.protobuf.UInt32Value" | "google.protobuf.UInt64Value" => wrapped(Type::Uint),
                "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => wrapped(Type::Double),
                "google.protobuf.StringValue" => wrapped(Type::String),
                "google.protobuf.BytesValue" => wrapped(Type::Bytes),
                name if name.starts_with("google.protobuf.") => Type::Unsupported(name.to_owned()),
                _ => Type::Message(message),
            }
        }
    }
}
