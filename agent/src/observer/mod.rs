//! The Hubble observer: the event ring, request cursors, filters, field masks and
//! the `observer.Observer` gRPC service.

pub mod codec;
pub mod cursor;
pub mod entry;
pub mod fieldmask;
pub mod filter;
pub(crate) mod namespaces;
pub(crate) mod rate;
pub mod ring;
pub(crate) mod router;
pub mod service;
pub mod sink;
