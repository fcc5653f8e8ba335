//! Metadata messages that many flows attach by reference, each encoded once.
//!
//! One pod's `Endpoint` (labels, workloads, names) is most of an enriched flow's
//! bytes. prost re-encodes it for every flow, one varint and one length at a time,
//! about a microsecond per flow on this kind of machine; copying the bytes it
//! produced the first time costs a few nanoseconds. The message is immutable once
//! shared (the index replaces the `Arc` when a pod changes), so the cached bytes
//! never go stale.
//!
//! The cache fills on first encoding only: an index of pods that never send
//! traffic holds no encoded bytes.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use prost::Message;

/// A protobuf message with its encoding (and the exporter's JSON text) cached on first
/// use. Immutable: to change the message, build a new `Shared` and swap the `Arc`.
pub struct Shared<M> {
    message: M,
    encoded: OnceLock<Box<[u8]>>,
    /// The flow-log exporter's JSON text of the message, for the same reason.
    json: OnceLock<Box<[u8]>>,
}

impl<M: Message> Shared<M> {
    /// Wraps `message`; nothing is encoded until a flow carrying it is.
    pub fn new(message: M) -> Self {
        Self {
            message,
            encoded: OnceLock::new(),
            json: OnceLock::new(),
        }
    }

    /// The message's body as prost encodes it (no key, no length prefix).
    pub(crate) fn encoded_body(&self) -> &[u8] {
        self.encoded
            .get_or_init(|| self.message.encode_to_vec().into_boxed_slice())
    }

    /// The message's JSON text as `render` writes it, rendered on first use.
    pub fn json(&self, render: impl FnOnce(&M) -> Vec<u8>) -> &[u8] {
        self.json.get_or_init(|| render(&self.message).into_boxed_slice())
    }

    /// The wrapped message, for readers and filters (also reachable through `Deref`).
    pub fn message(&self) -> &M {
        &self.message
    }

    pub(crate) fn into_message(self) -> M {
        self.message
    }
}

impl<M> Deref for Shared<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.message
    }
}

impl<M: Message> From<M> for Shared<M> {
    fn from(message: M) -> Self {
        Self::new(message)
    }
}

impl<M: Clone> Clone for Shared<M> {
    fn clone(&self) -> Self {
        Self {
            message: self.message.clone(),
            encoded: self.encoded.clone(),
            json: self.json.clone(),
        }
    }
}

/// Equal when the messages are: the cache is a function of the message.
impl<M: PartialEq> PartialEq for Shared<M> {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl<M: fmt::Debug> fmt::Debug for Shared<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.message.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sightline_proto::flow::Endpoint;

    use super::*;

    #[test]
    fn the_cached_body_decodes_to_the_message() {
        let endpoint = Endpoint {
            identity: 7,
            pod_name: "web-1".into(),
            labels: vec!["k8s:app=web".into()],
            ..Endpoint::default()
        };
        let shared = Shared::new(endpoint.clone());
        assert_eq!(Endpoint::decode(shared.encoded_body()).unwrap(), endpoint);
        assert_eq!(shared.encoded_body().len(), endpoint.encoded_len());
        assert_eq!(shared.clone(), Shared::new(endpoint));
    }
}
