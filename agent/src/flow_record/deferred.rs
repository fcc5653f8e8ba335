//! Flow fields the datapath decoder keeps in binary form. Formatting a UUID, two MAC
//! and two IP addresses, a summary and copying names costs ten allocations and
//! several hundred nanoseconds per packet event, and most flows leave the ring
//! without any client reading them. These fields become text only when a flow is
//! encoded for a client or materialised.
//!
//! A deferred field is used only where the flow's own field is empty, so producers
//! that fill `flow.Flow` directly (tests, the synthetic source) are unaffected. The
//! `IP` message comes from [`FlowRecord::addresses`] when `flow.ip` is unset.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::sync::Arc;

use sightline_proto::flow::{Emitter, Ethernet, Flow, Ip, IpVersion, Layer7, NetworkInterface, layer7};
use sightline_proto::wire::Writer;

use super::summary::L4Summary;
use crate::l7::HeaderFields;

/// Field numbers of `flow.Flow` and of the messages written here.
use sightline_proto::fields::{emitter, ethernet, flow as field, ip, network_interface};

/// The name Hubble's own parser puts in `flow.emitter`.
pub(crate) const EMITTER_NAME: &str = "Hubble";

/// The text fields of `flow.Flow` that the datapath decoder fills in binary form. Each
/// is `None` when the producer filled the flow's own field instead (or has no value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deferred {
    /// `flow.uuid`, written in its hyphenated form.
    pub uuid: Option<uuid::Uuid>,
    /// `emitter.version`; the name is always Hubble's.
    pub emitter_version: Option<&'static str>,
    /// `flow.node_name`, one allocation shared by every flow of this agent.
    pub node_name: Option<Arc<str>>,
    /// Source and destination MAC, packed into the low six bytes of a `u64` (a plain 8-byte copy
    /// where two 6-byte arrays stall the store buffer).
    pub ethernet: Option<[u64; 2]>,
    /// `flow.interface`: the index and name of the link the packet was seen on.
    pub interface: Option<(u32, Arc<str>)>,
    /// What Hubble's one-line `flow.Summary` of an L3/L4 flow is rendered from.
    pub(crate) summary: Option<L4Summary>,
    /// The header list of an HTTP record in `flow.l7` (the list there is left empty).
    pub http_headers: Option<HeaderFields>,
}

impl Deferred {
    /// Whether nothing is deferred, so the flow's own fields are complete.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `l7` with its HTTP header list built from the deferred fields, when the flow's own
    /// list is empty and there are deferred ones; `None` when `l7` is complete as it is.
    pub(super) fn layer7(&self, l7: &Layer7) -> Option<Layer7> {
        let fields = self.http_headers.as_ref()?;
        match &l7.record {
            Some(layer7::Record::Http(http)) if http.headers.is_empty() => {
                let mut l7 = l7.clone();
                if let Some(layer7::Record::Http(http)) = &mut l7.record {
                    http.headers = fields.to_list();
                }
                Some(l7)
            }
            _ => None,
        }
    }
}

/// Text formatted on the stack: the longest deferred text but the summary is an
/// IPv6 address (45 bytes).
#[derive(Clone, Copy)]
pub(crate) struct StackText {
    bytes: [u8; 48],
    len: usize,
}

impl StackText {
    const fn new() -> Self {
        Self { bytes: [0; 48], len: 0 }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    fn push_byte(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }
}

impl fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A MAC address as the low six bytes of a `u64`, the form [`Deferred::ethernet`] keeps.
pub(crate) fn pack_mac(bytes: &[u8; 6]) -> u64 {
    let [a, b, c, d, e, f] = *bytes;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

/// "aa:bb:cc:dd:ee:ff" of a [`pack_mac`]ed address.
pub(crate) fn mac_text(packed: u64) -> StackText {
    let bytes = &packed.to_be_bytes()[2..];
    let mut text = StackText::new();
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            text.push_byte(b':');
        }
        text.push_byte(HEX[(b >> 4) as usize]);
        text.push_byte(HEX[(b & 0xf) as usize]);
    }
    text
}

/// The address as Go's `net.IP.String()` writes it; dotted quads without the
/// formatting machinery, which is most of the cost.
pub(crate) fn ip_text(addr: IpAddr) -> StackText {
    let mut text = StackText::new();
    match addr {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push_byte(b'.');
                }
                let (h, t, o) = (octet / 100, octet / 10 % 10, octet % 10);
                if h > 0 {
                    text.push_byte(b'0' + h);
                }
                if h > 0 || t > 0 {
                    text.push_byte(b'0' + t);
                }
                text.push_byte(b'0' + o);
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(text, "{v6}");
        }
    }
    text
}

fn ip_version(addr: IpAddr) -> IpVersion {
    match addr {
        IpAddr::V4(_) => IpVersion::IPv4,
        IpAddr::V6(_) => IpVersion::IPv6,
    }
}

/// Length of a length-delimited field holding `len` bytes.
/// The deferred fields a flow will actually write, formatted once per encoding.
pub(super) struct Rendered<'a> {
    uuid: Option<StackText>,
    emitter_version: Option<&'static str>,
    node_name: Option<&'a str>,
    ethernet: Option<[StackText; 2]>,
    ip: Option<(StackText, StackText, IpVersion)>,
    interface: Option<(u32, &'a str)>,
    summary: Option<String>,
}

impl Deferred {
    /// The fields `flow` (the record's own) leaves empty, as text.
    pub(super) fn render(&self, flow: &Flow, addresses: Option<(IpAddr, IpAddr)>) -> Rendered<'_> {
        let deferred = self;
        #[allow(deprecated)]
        let own_summary_empty = flow.summary.is_empty();
        Rendered {
            uuid: self.uuid.filter(|_| flow.uuid.is_empty()).map(|id| {
                let mut text = StackText::new();
                id.hyphenated().encode_lower(&mut text.bytes);
                text.len = uuid::fmt::Hyphenated::LENGTH;
                text
            }),
            emitter_version: deferred.emitter_version.filter(|_| flow.emitter.is_none()),
            node_name: deferred.node_name.as_deref().filter(|_| flow.node_name.is_empty()),
            ethernet: deferred
                .ethernet
                .filter(|_| flow.ethernet.is_none())
                .map(|[source, destination]| [mac_text(source), mac_text(destination)]),
            ip: addresses
                .filter(|_| flow.ip.is_none())
                .map(|(source, destination)| (ip_text(source), ip_text(destination), ip_version(source))),
            interface: deferred
                .interface
                .as_ref()
                .filter(|_| flow.interface.is_none())
                .map(|(index, name)| (*index, &**name)),
            summary: deferred.summary.as_ref().filter(|_| own_summary_empty).map(|summary| {
                let mut text = String::with_capacity(48);
                summary.render(&mut text);
                text
            }),
        }
    }

    /// Fills the flow's empty fields from the deferred ones.
    pub(super) fn fill(&self, flow: &mut Flow, addresses: Option<(IpAddr, IpAddr)>) {
        if let (Some(fields), Some(l7)) = (&self.http_headers, flow.l7.as_deref_mut())
            && let Some(layer7::Record::Http(http)) = &mut l7.record
            && http.headers.is_empty()
        {
            http.headers = fields.to_list();
        }
        let rendered = self.render(flow, addresses);
        if let Some(uuid) = rendered.uuid {
            flow.uuid = uuid.as_str().to_owned();
        }
        if let Some(version) = rendered.emitter_version {
            flow.emitter = Some(Box::new(Emitter {
                name: EMITTER_NAME.to_owned(),
                version: version.to_owned(),
            }));
        }
        if let Some(name) = rendered.node_name {
            flow.node_name = name.to_owned();
        }
        if let Some([source, destination]) = rendered.ethernet {
            flow.ethernet = Some(Box::new(Ethernet {
                source: source.as_str().to_owned(),
                destination: destination.as_str().to_owned(),
            }));
        }
        if let Some((source, destination, version)) = rendered.ip {
            flow.ip = Some(Ip {
                source: source.as_str().to_owned(),
                destination: destination.as_str().to_owned(),
                ip_version: version as i32,
                ..Ip::default()
            });
        }
        if let Some((index, name)) = rendered.interface {
            flow.interface = Some(NetworkInterface {
                index,
                name: name.to_owned(),
            });
        }
        if let Some(summary) = rendered.summary {
            #[allow(deprecated)]
            {
                flow.summary = summary;
            }
        }
    }
}

impl Rendered<'_> {
    /// Writes the rendered fields as `flow.Flow` fields.
    pub(super) fn write(&self, w: &mut Writer<'_>) {
        if let Some(uuid) = &self.uuid {
            w.string(field::UUID, uuid.as_str());
        }
        if let Some(version) = self.emitter_version {
            w.message(field::EMITTER, |w| {
                w.string(emitter::NAME, EMITTER_NAME);
                w.string(emitter::VERSION, version);
            });
        }
        if let Some(name) = self.node_name {
            w.string(field::NODE_NAME, name);
        }
        if let Some([source, destination]) = &self.ethernet {
            w.message(field::ETHERNET, |w| {
                w.string(ethernet::SOURCE, source.as_str());
                w.string(ethernet::DESTINATION, destination.as_str());
            });
        }
        if let Some((source, destination, version)) = &self.ip {
            w.message(field::IP, |w| {
                w.string(ip::SOURCE, source.as_str());
                w.string(ip::DESTINATION, destination.as_str());
                w.int32(ip::IP_VERSION, *version as i32);
            });
        }
        if let Some((index, name)) = self.interface {
            w.message(field::INTERFACE, |w| {
                w.uint(network_interface::INDEX, u64::from(index));
                w.string(network_interface::NAME, name);
            });
        }
        if let Some(summary) = &self.summary {
            w.string(field::SUMMARY, summary);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_printed_as_hubble_does() {
        assert_eq!(
            mac_text(pack_mac(&[0x02, 0xab, 0, 0x10, 0xff, 9])).as_str(),
            "02:ab:00:10:ff:09"
        );
        for text in [
            "10.0.0.1",
            "192.168.100.255",
            "0.9.10.99",
            "fd00::1",
            "::ffff:10.0.0.1",
            "2001:db8:0:1:2:3:4:5",
        ] {
            let addr: IpAddr = text.parse().unwrap_or_else(|_| panic!("{text}"));
            assert_eq!(ip_text(addr).as_str(), text);
        }
        let longest: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap_or_else(|_| panic!("longest"));
        assert_eq!(ip_text(longest).as_str(), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    }
}
