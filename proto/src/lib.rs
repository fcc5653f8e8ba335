//! The public Hubble gRPC API as Rust types.
//!
//! Messages come from prost, the `observer.Observer` and `peer.Peer` clients and
//! servers from tonic, and serde impls from pbjson so JSON matches what `hubble
//! observe -o json` prints (protojson with the original field names). Everything is
//! generated at build time from the `.proto` files beside this crate, which
//! `tests/wire_compat.rs` holds identical to Cilium's published descriptors.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Package `flow`: the flow record, filters and agent/debug/lost events.
pub mod flow {
    include!(concat!(env!("OUT_DIR"), "/flow.rs"));
    include!(concat!(env!("OUT_DIR"), "/flow.serde.rs"));
}

/// Package `relay`: node status events.
pub mod relay {
    include!(concat!(env!("OUT_DIR"), "/relay.rs"));
    include!(concat!(env!("OUT_DIR"), "/relay.serde.rs"));
}

/// Package `observer`: the Observer service.
pub mod observer {
    include!(concat!(env!("OUT_DIR"), "/observer.rs"));
    include!(concat!(env!("OUT_DIR"), "/observer.serde.rs"));
}

/// Package `peer`: the Peer service.
pub mod peer {
    include!(concat!(env!("OUT_DIR"), "/peer.rs"));
    include!(concat!(env!("OUT_DIR"), "/peer.serde.rs"));
}

pub mod codec;
pub mod fields;
pub mod flows_route;
pub mod reflection;
mod timestamp;
pub mod wire;

pub use timestamp::Timestamp;

/// Well-known types as used by the generated code: wrappers, `FieldMask`, `Any`, and
/// our protojson-exact [`Timestamp`].
pub mod wkt {
    pub use crate::Timestamp;
    pub use pbjson_types::{Any, BoolValue, FieldMask, Int32Value, UInt32Value};
}

/// The encoded `FileDescriptorSet` of this API, imports included, under
/// Cilium's file names (`flow/flow.proto`, ...), as reflection clients expect.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hubble_descriptor.bin"));
