//! Reaching an existing series without building its label strings.
//!
//! Building the label values of a flow (pod names joined with their namespace,
//! enum names, port digits) and hashing them costs far more than the count
//! itself. Most of those values are a function of a few numbers in the flow and
//! of the endpoints enrichment attached, which every flow of a pod shares as one
//! `Arc`. A [`ShortcutKey`] packs those numbers and the endpoints' addresses
//! into four words; a family maps it to the series it led to the first time.
//!
//! An address names an endpoint only while its allocation lives, so each
//! shortcut holds a `Weak` to the endpoints it was built from: the allocation
//! (not the pod's data) stays, and the address cannot be reused for a different
//! pod while the shortcut exists. Once no flow and no index holds the endpoint,
//! no flow can produce the key again and the shortcut is dead weight, dropped
//! when the family next makes room. The index replaces an endpoint's `Arc` when
//! the pod changes, so a changed pod gets new shortcuts.

use std::sync::{Arc, Weak};

use rustc_hash::{FxHashMap, FxHashSet};
use sightline_proto::flow::{layer4, layer7};

use crate::flow_record::{FlowRecord, Shared, SharedEndpoint};
use sightline_proto::flow::Endpoint;

/// What identifies a series for one handler: the handler's own inputs packed
/// into `own`, and the endpoints (by address) and direction the context reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ShortcutKey {
    own: u64,
    direction: i32,
    source: usize,
    destination: usize,
}

/// The endpoints and direction a context reads, when it reads nothing else of the flow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sides<'a> {
    pub source: Option<&'a SharedEndpoint>,
    pub destination: Option<&'a SharedEndpoint>,
    pub direction: i32,
}

/// A shortcut key with the endpoints it names, to be pinned if it is stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shortcut<'a> {
    key: ShortcutKey,
    sides: Sides<'a>,
}

fn address(endpoint: Option<&SharedEndpoint>) -> usize {
    endpoint.map_or(0, |e| Arc::as_ptr(e) as usize)
}

impl<'a> Shortcut<'a> {
    pub(crate) fn new(own: Packed, sides: Sides<'a>) -> Self {
        Self {
            key: ShortcutKey {
                own: own.bits,
                direction: sides.direction,
                source: address(sides.source),
                destination: address(sides.destination),
            },
            sides,
        }
    }
}

/// Small numbers packed into one word; `None` when one does not fit, so a
/// key never stands for two different label sets.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Packed {
    bits: u64,
    used: u32,
}

impl Packed {
    pub(crate) fn push(self, value: impl TryInto<u64>, width: u32) -> Option<Self> {
        let value = value.try_into().ok()?;
        if self.used + width > 64 || (width < 64 && value >> width != 0) {
            return None;
        }
        Some(Self {
            bits: self.bits | (value << self.used),
            used: self.used + width,
        })
    }
}

/// Which L4 protocol a flow carries, as a number below 8.
pub(crate) fn l4_kind(flow: &FlowRecord) -> u64 {
    match flow.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        None => 0,
        Some(layer4::Protocol::Tcp(_)) => 1,
        Some(layer4::Protocol::Udp(_)) => 2,
        Some(layer4::Protocol::IcmPv4(_)) => 3,
        Some(layer4::Protocol::IcmPv6(_)) => 4,
        Some(layer4::Protocol::Sctp(_)) => 5,
        Some(layer4::Protocol::Vrrp(_)) => 6,
        Some(layer4::Protocol::Igmp(_)) => 7,
    }
}

/// Which L7 record a flow carries, as a number below 4.
// The proto marks Kafka deprecated; the handlers still read it.
#[allow(deprecated)]
pub(crate) fn l7_kind(flow: &FlowRecord) -> u64 {
    match flow.l7.as_ref().and_then(|l7| l7.record.as_ref()) {
        None => 0,
        Some(layer7::Record::Dns(_)) => 1,
        Some(layer7::Record::Http(_)) => 2,
        Some(layer7::Record::Kafka(_)) => 3,
    }
}

#[derive(Debug)]
struct Entry<C> {
    cell: Arc<C>,
    /// Keeps the addresses in the key from being reused while the entry exists.
    pinned: [Option<Weak<Shared<Endpoint>>>; 2],
}

impl<C> Entry<C> {
    /// Whether an endpoint of the key is gone: no flow can carry it any more.
    fn is_stale(&self) -> bool {
        self.pinned.iter().flatten().any(|e| e.strong_count() == 0)
    }
}

/// One family's shortcuts. Bounded: at capacity, shortcuts of departed pods go
/// first, and if that is not enough all go (they are rebuilt from the labels).
#[derive(Debug)]
pub(crate) struct Shortcuts<C> {
    map: FxHashMap<ShortcutKey, Entry<C>>,
    capacity: usize,
}

impl<C> Shortcuts<C> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: FxHashMap::default(),
            capacity,
        }
    }

    pub(crate) fn get(&self, shortcut: &Shortcut<'_>) -> Option<&Arc<C>> {
        self.map.get(&shortcut.key).map(|entry| &entry.cell)
    }

    pub(crate) fn insert(&mut self, shortcut: &Shortcut<'_>, cell: Arc<C>) {
        if self.map.len() >= self.capacity {
            self.map.retain(|_, entry| !entry.is_stale());
            if self.map.len() >= self.capacity / 2 {
                self.map.clear();
            }
        }
        let pinned = [
            shortcut.sides.source.map(Arc::downgrade),
            shortcut.sides.destination.map(Arc::downgrade),
        ];
        self.map.insert(shortcut.key, Entry { cell, pinned });
    }

    /// Drops the shortcuts to `removed` cells (by address) and those of departed pods.
    pub(crate) fn forget(&mut self, removed: &FxHashSet<usize>) {
        self.map
            .retain(|_, entry| !removed.contains(&(Arc::as_ptr(&entry.cell) as usize)) && !entry.is_stale());
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_do_not_fit_their_width_give_no_key() {
        let packed = Packed::default().push(255u32, 8).and_then(|p| p.push(3u8, 2));
        assert!(packed.is_some());
        assert!(Packed::default().push(256u32, 8).is_none());
        assert!(Packed::default().push(-1i32, 8).is_none(), "negative enum values");
        assert!(Packed::default().push(1u8, 40).and_then(|p| p.push(1u8, 40)).is_none());
    }

    #[test]
    fn different_values_pack_differently() {
        let a = Packed::default()
            .push(1u8, 4)
            .and_then(|p| p.push(2u8, 4))
            .unwrap_or_default();
        let b = Packed::default()
            .push(2u8, 4)
            .and_then(|p| p.push(1u8, 4))
            .unwrap_or_default();
        assert_ne!(a.bits, b.bits);
    }
}
