//! The Hubble observer: the event ring, request cursors, filters, field masks and
//! the `observer.Observer` gRPC service.

pub mod codec;
pub mod cursor;
pub mod entry;
pub mod fieldmask;
pub mod filter;
pub mod namespaces;
pub mod rate;
pub mod ring;
pub mod router;
pub mod service;
pub mod sink;
