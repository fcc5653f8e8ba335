//! A protobuf writer for the messages every flow carries, faster than prost's.
//!
//! prost computes a message's length before writing it, so a nested message's
//! length is computed once per level above it (`Flow` → `Layer4` → `TCP` →
//! `TCPFlags` four times), and it writes each varint one byte at a time through
//! `BufMut`. Encoding a flow for its first reader was most of a GetFlows stream's
//! cost. [`Writer`] instead reserves one byte for a nested message's length, writes
//! the body, and patches the length in (moving the body in the rare case the
//! length needs more than one byte); a varint is one bounded store.
//!
//! The output is canonical protobuf (the same bytes a conformant encoder may
//! produce, in field-number order for the hand-written messages); what decoders
//! read is identical to prost's encoding of the same message. Sub-messages that
//! flows rarely carry go through prost.

use prost::Message;
use prost::bytes::BytesMut;
use prost::encoding::{WireType, encoded_len_varint};

use crate::Timestamp;
use crate::fields as field;
use crate::flow::{
    CiliumEventType, Emitter, Ethernet, Flow, IcmPv4, IcmPv6, Ip, Layer4, NetworkInterface, Sctp, Tcp, TcpFlags, Udp,
    layer4,
};

/// Appends protobuf fields to a `BytesMut`, growing it as needed.
///
/// The buffer's start, length and capacity live in the writer rather than being
/// read through the `BytesMut` after every store: the compiler must assume a byte
/// written through the buffer's pointer may have changed the `BytesMut` itself, so
/// each field reloaded them, and a flow's few dozen fields spent most of their time
/// on that. The `BytesMut` learns its new length when the writer is dropped.
pub struct Writer<'a> {
    out: &'a mut BytesMut,
    base: *mut u8,
    len: usize,
    cap: usize,
}

impl<'a> Writer<'a> {
    pub fn new(out: &'a mut BytesMut) -> Self {
        let (base, len, cap) = (out.as_mut_ptr(), out.len(), out.capacity());
        Self { out, base, len, cap }
    }

    /// Bytes written to the underlying buffer so far (including what it held before).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes room for `n` more bytes.
    #[inline(always)]
    fn room(&mut self, n: usize) {
        if self.cap - self.len < n {
            self.grow(n);
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, n: usize) {
        self.sync();
        // At least double, so a writer that starts small grows a few times, not per field.
        self.out.reserve(n.max(self.cap).max(64));
        self.reload();
    }

    /// Tells the `BytesMut` how much was written, before it is used directly.
    fn sync(&mut self) {
        // SAFETY: the first `len` bytes are initialised: they were there when the
        // writer was made, or it wrote them since, within the capacity it read.
        unsafe { self.out.set_len(self.len) };
    }

    /// Reads the buffer back after it was used directly.
    fn reload(&mut self) {
        (self.base, self.len, self.cap) = (self.out.as_mut_ptr(), self.out.len(), self.out.capacity());
    }

    #[inline(always)]
    fn put_slice(&mut self, bytes: &[u8]) {
        self.room(bytes.len());
        // SAFETY: `room` made space for `bytes.len()` bytes after `len`, and the
        // source cannot overlap the spare capacity of a buffer only we can write.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(self.len), bytes.len());
        }
        self.len += bytes.len();
    }

    /// Overwrites the already written byte at `at`.
    #[inline(always)]
    fn set(&mut self, at: usize, byte: u8) {
        assert!(at < self.len);
        // SAFETY: `at` is inside the written part of the buffer.
        unsafe { *self.base.add(at) = byte };
    }

    #[inline(always)]
    pub fn varint(&mut self, mut value: u64) {
        self.room(10);
        // SAFETY: a varint is at most 10 bytes, and `room` made space for them.
        unsafe {
            let mut at = self.base.add(self.len);
            while value >= 0x80 {
                *at = (value as u8) | 0x80;
                at = at.add(1);
                value >>= 7;
            }
            *at = value as u8;
            self.len = at.offset_from(self.base) as usize + 1;
        }
    }

    #[inline(always)]
    fn key(&mut self, tag: u32, wire_type: WireType) {
        self.varint(u64::from(tag << 3 | wire_type as u32));
    }

    #[inline(always)]
    pub fn bytes(&mut self, tag: u32, value: &[u8]) {
        if !value.is_empty() {
            self.key(tag, WireType::LengthDelimited);
            self.varint(value.len() as u64);
            self.put_slice(value);
        }
    }

    #[inline(always)]
    pub fn string(&mut self, tag: u32, value: &str) {
        self.bytes(tag, value.as_bytes());
    }

    pub fn strings(&mut self, tag: u32, values: &[String]) {
        for value in values {
            // Repeated fields keep empty elements.
            self.key(tag, WireType::LengthDelimited);
            self.varint(value.len() as u64);
            self.put_slice(value.as_bytes());
        }
    }

    /// `uint32`, `uint64`, `bool` and enum fields (enums and `int32` go through
    /// [`Writer::int32`]).
    #[inline(always)]
    pub fn uint(&mut self, tag: u32, value: u64) {
        if value != 0 {
            self.key(tag, WireType::Varint);
            self.varint(value);
        }
    }

    /// `int32` and enum fields: negative values are sign-extended to ten bytes.
    #[inline(always)]
    pub fn int32(&mut self, tag: u32, value: i32) {
        self.uint(tag, i64::from(value) as u64);
    }

    #[inline(always)]
    pub fn int64(&mut self, tag: u32, value: i64) {
        self.uint(tag, value as u64);
    }

    #[inline(always)]
    pub fn bool(&mut self, tag: u32, value: bool) {
        self.uint(tag, u64::from(value));
    }

    /// A message field whose body `body` writes.
    #[inline(always)]
    pub fn message(&mut self, tag: u32, body: impl FnOnce(&mut Self)) {
        self.key(tag, WireType::LengthDelimited);
        let length_at = self.len;
        self.put_slice(&[0]);
        body(self);
        self.patch_length(length_at);
    }

    /// A message field whose body is usually 128 bytes to 16 KiB (a whole flow):
    /// two bytes are reserved for its length, so the body rarely moves.
    #[inline]
    pub fn large_message(&mut self, tag: u32, body: impl FnOnce(&mut Self)) {
        self.key(tag, WireType::LengthDelimited);
        let length_at = self.len;
        self.put_slice(&[0, 0]);
        body(self);
        let body_len = self.len - length_at - 2;
        if (0x80..0x4000).contains(&body_len) {
            self.set(length_at, (body_len as u8 & 0x7f) | 0x80);
            self.set(length_at + 1, (body_len >> 7) as u8);
        } else {
            // Give the second byte back and write the length as for any message.
            self.sync();
            self.out.copy_within(length_at + 2.., length_at + 1);
            self.out.truncate(self.len - 1);
            self.reload();
            self.patch_length(length_at);
        }
    }

    /// A message field given its body's encoding.
    #[inline(always)]
    pub fn encoded_message(&mut self, tag: u32, body: &[u8]) {
        self.key(tag, WireType::LengthDelimited);
        self.varint(body.len() as u64);
        self.put_slice(body);
    }

    /// A message field written by prost, for messages flows rarely carry.
    pub fn prost_message(&mut self, tag: u32, message: &impl Message) {
        self.message(tag, |w| {
            w.sync();
            message.encode_raw(w.out);
            w.reload();
        });
    }

    /// Writes the length of the body that follows the one byte reserved at
    /// `length_at`.
    #[inline(always)]
    fn patch_length(&mut self, length_at: usize) {
        let body_len = self.len - length_at - 1;
        if body_len < 0x80 {
            self.set(length_at, body_len as u8);
        } else {
            self.patch_long_length(length_at, body_len);
        }
    }

    /// A length of more than one byte: the body moves to make room for it.
    #[cold]
    #[inline(never)]
    fn patch_long_length(&mut self, length_at: usize, body_len: usize) {
        self.sync();
        let length_len = encoded_len_varint(body_len as u64);
        let end = self.out.len();
        self.out.resize(end + length_len - 1, 0);
        self.out.copy_within(length_at + 1..end, length_at + length_len);
        let mut value = body_len as u64;
        for byte in &mut self.out[length_at..length_at + length_len] {
            *byte = (value as u8 & 0x7f) | if value >= 0x80 { 0x80 } else { 0 };
            value >>= 7;
        }
        self.reload();
    }

    pub fn timestamp(&mut self, tag: u32, time: &Timestamp) {
        self.message(tag, |w| {
            w.int64(field::timestamp::SECONDS, time.seconds);
            w.int32(field::timestamp::NANOS, time.nanos);
        });
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        self.sync();
    }
}

/// Writes every field of `flow` except those `skip` names, in field-number order
/// (no key and length: this is the body of a `flow.Flow`).
pub fn flow_fields(flow: &Flow, skip: Skip, w: &mut Writer<'_>) {
    // Destructured without `..`: a field added to `flow.Flow` does not compile
    // until it is written here.
    #[allow(deprecated)]
    let Flow {
        time,
        uuid,
        emitter,
        verdict,
        drop_reason,
        auth_type,
        ethernet,
        ip,
        l4,
        tunnel,
        source,
        destination,
        r#type,
        node_name,
        node_labels,
        source_names,
        destination_names,
        l7,
        reply,
        event_type,
        source_service,
        destination_service,
        traffic_direction,
        policy_match_type,
        trace_observation_point,
        trace_reason,
        file,
        ip_trace_id,
        drop_reason_desc,
        is_reply,
        debug_capture_point,
        interface,
        proxy_port,
        trace_context,
        sock_xlate_point,
        socket_cookie,
        cgroup_id,
        summary,
        extensions,
        egress_allowed_by,
        ingress_allowed_by,
        egress_denied_by,
        ingress_denied_by,
        policy_log,
        aggregate,
    } = flow;
    if let Some(time) = time {
        w.timestamp(field::flow::TIME, time);
    }
    w.int32(field::flow::VERDICT, *verdict);
    w.uint(field::flow::DROP_REASON, u64::from(*drop_reason));
    if let Some(ethernet) = ethernet {
        write_ethernet(field::flow::ETHERNET, ethernet, w);
    }
    if let Some(ip) = ip {
        write_ip(field::flow::IP, ip, w);
    }
    if let Some(l4) = l4 {
        write_layer4(field::flow::L4, l4, w);
    }
    if let (Some(source), false) = (source, skip.source) {
        w.prost_message(field::flow::SOURCE, &**source);
    }
    if let (Some(destination), false) = (destination, skip.destination) {
        w.prost_message(field::flow::DESTINATION, &**destination);
    }
    w.int32(field::flow::TYPE, *r#type);
    w.string(field::flow::NODE_NAME, node_name);
    if !skip.source_names {
        w.strings(field::flow::SOURCE_NAMES, source_names);
    }
    if !skip.destination_names {
        w.strings(field::flow::DESTINATION_NAMES, destination_names);
    }
    if let (Some(l7), false) = (l7, skip.l7) {
        w.prost_message(field::flow::L7, &**l7);
    }
    w.bool(field::flow::REPLY, *reply);
    if let Some(event_type) = event_type {
        write_event_type(field::flow::EVENT_TYPE, event_type, w);
    }
    if let (Some(service), false) = (source_service, skip.source_service) {
        w.prost_message(field::flow::SOURCE_SERVICE, &**service);
    }
    if let (Some(service), false) = (destination_service, skip.destination_service) {
        w.prost_message(field::flow::DESTINATION_SERVICE, &**service);
    }
    w.int32(field::flow::TRAFFIC_DIRECTION, *traffic_direction);
    w.uint(field::flow::POLICY_MATCH_TYPE, u64::from(*policy_match_type));
    w.int32(field::flow::TRACE_OBSERVATION_POINT, *trace_observation_point);
    w.int32(field::flow::DROP_REASON_DESC, *drop_reason_desc);
    if let Some(is_reply) = is_reply {
        w.message(field::flow::IS_REPLY, |w| {
            w.bool(field::bool_value::VALUE, is_reply.value)
        });
    }
    w.int32(field::flow::DEBUG_CAPTURE_POINT, *debug_capture_point);
    if let Some(interface) = interface {
        write_interface(field::flow::INTERFACE, interface, w);
    }
    w.uint(field::flow::PROXY_PORT, u64::from(*proxy_port));
    if let Some(trace_context) = trace_context {
        w.prost_message(field::flow::TRACE_CONTEXT, &**trace_context);
    }
    w.int32(field::flow::SOCK_XLATE_POINT, *sock_xlate_point);
    w.uint(field::flow::SOCKET_COOKIE, *socket_cookie);
    w.uint(field::flow::CGROUP_ID, *cgroup_id);
    w.string(field::flow::UUID, uuid);
    w.int32(field::flow::AUTH_TYPE, *auth_type);
    w.int32(field::flow::TRACE_REASON, *trace_reason);
    w.strings(field::flow::NODE_LABELS, node_labels);
    if let Some(file) = file {
        w.prost_message(field::flow::FILE, &**file);
    }
    if let Some(tunnel) = tunnel {
        w.prost_message(field::flow::TUNNEL, &**tunnel);
    }
    if let Some(ip_trace_id) = ip_trace_id {
        w.prost_message(field::flow::IP_TRACE_ID, ip_trace_id);
    }
    if let Some(emitter) = emitter {
        write_emitter(field::flow::EMITTER, emitter, w);
    }
    for policy in egress_allowed_by {
        w.prost_message(field::flow::EGRESS_ALLOWED_BY, policy);
    }
    for policy in ingress_allowed_by {
        w.prost_message(field::flow::INGRESS_ALLOWED_BY, policy);
    }
    for policy in egress_denied_by {
        w.prost_message(field::flow::EGRESS_DENIED_BY, policy);
    }
    for policy in ingress_denied_by {
        w.prost_message(field::flow::INGRESS_DENIED_BY, policy);
    }
    w.strings(field::flow::POLICY_LOG, policy_log);
    if let Some(aggregate) = aggregate {
        w.prost_message(field::flow::AGGREGATE, aggregate);
    }
    w.string(field::flow::SUMMARY, summary);
    if let Some(extensions) = extensions {
        w.prost_message(field::flow::EXTENSIONS, &**extensions);
    }
}

/// Fields of `flow.Flow` that the caller writes itself (attached metadata that
/// replaces the flow's own): writing them twice would merge two messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skip {
    pub source: bool,
    pub destination: bool,
    pub source_service: bool,
    pub destination_service: bool,
    pub source_names: bool,
    pub destination_names: bool,
    pub l7: bool,
}

pub fn write_ethernet(tag: u32, ethernet: &Ethernet, w: &mut Writer<'_>) {
    let Ethernet { source, destination } = ethernet;
    w.message(tag, |w| {
        w.string(field::ethernet::SOURCE, source);
        w.string(field::ethernet::DESTINATION, destination);
    });
}

pub fn write_ip(tag: u32, ip: &Ip, w: &mut Writer<'_>) {
    let Ip {
        source,
        source_xlated,
        destination,
        ip_version,
        encrypted,
    } = ip;
    w.message(tag, |w| {
        w.string(field::ip::SOURCE, source);
        w.string(field::ip::DESTINATION, destination);
        w.int32(field::ip::IP_VERSION, *ip_version);
        w.bool(field::ip::ENCRYPTED, *encrypted);
        w.string(field::ip::SOURCE_XLATED, source_xlated);
    });
}

pub fn write_interface(tag: u32, interface: &NetworkInterface, w: &mut Writer<'_>) {
    let NetworkInterface { index, name } = interface;
    w.message(tag, |w| {
        w.uint(field::network_interface::INDEX, u64::from(*index));
        w.string(field::network_interface::NAME, name);
    });
}

pub fn write_emitter(tag: u32, emitter: &Emitter, w: &mut Writer<'_>) {
    let Emitter { name, version } = emitter;
    w.message(tag, |w| {
        w.string(field::emitter::NAME, name);
        w.string(field::emitter::VERSION, version);
    });
}

fn write_event_type(tag: u32, event_type: &CiliumEventType, w: &mut Writer<'_>) {
    let CiliumEventType { r#type, sub_type } = event_type;
    w.message(tag, |w| {
        w.int32(field::cilium_event_type::TYPE, *r#type);
        w.int32(field::cilium_event_type::SUB_TYPE, *sub_type);
    });
}

fn write_layer4(tag: u32, l4: &Layer4, w: &mut Writer<'_>) {
    let Layer4 { protocol } = l4;
    w.message(tag, |w| match protocol {
        None => {}
        Some(layer4::Protocol::Tcp(tcp)) => {
            let Tcp {
                source_port,
                destination_port,
                flags,
            } = tcp;
            w.message(field::layer4::TCP, |w| {
                w.uint(field::tcp::SOURCE_PORT, u64::from(*source_port));
                w.uint(field::tcp::DESTINATION_PORT, u64::from(*destination_port));
                if let Some(flags) = flags {
                    write_tcp_flags(field::tcp::FLAGS, flags, w);
                }
            });
        }
        Some(layer4::Protocol::Udp(Udp {
            source_port,
            destination_port,
        })) => w.message(field::layer4::UDP, |w| {
            w.uint(field::udp::SOURCE_PORT, u64::from(*source_port));
            w.uint(field::udp::DESTINATION_PORT, u64::from(*destination_port));
        }),
        Some(layer4::Protocol::IcmPv4(IcmPv4 { r#type, code })) => w.message(field::layer4::ICMPV4, |w| {
            w.uint(field::icmpv4::TYPE, u64::from(*r#type));
            w.uint(field::icmpv4::CODE, u64::from(*code));
        }),
        Some(layer4::Protocol::IcmPv6(IcmPv6 { r#type, code })) => w.message(field::layer4::ICMPV6, |w| {
            w.uint(field::icmpv6::TYPE, u64::from(*r#type));
            w.uint(field::icmpv6::CODE, u64::from(*code));
        }),
        Some(layer4::Protocol::Sctp(Sctp {
            source_port,
            destination_port,
        })) => w.message(field::layer4::SCTP, |w| {
            w.uint(field::sctp::SOURCE_PORT, u64::from(*source_port));
            w.uint(field::sctp::DESTINATION_PORT, u64::from(*destination_port));
        }),
        Some(layer4::Protocol::Vrrp(vrrp)) => w.prost_message(field::layer4::VRRP, vrrp),
        Some(layer4::Protocol::Igmp(igmp)) => w.prost_message(field::layer4::IGMP, igmp),
    });
}

fn write_tcp_flags(tag: u32, flags: &TcpFlags, w: &mut Writer<'_>) {
    let TcpFlags {
        fin,
        syn,
        rst,
        psh,
        ack,
        urg,
        ece,
        cwr,
        ns,
    } = flags;
    w.message(tag, |w| {
        use field::tcp_flags::{ACK, CWR, ECE, FIN, NS, PSH, RST, SYN, URG};
        let flags = [
            (FIN, fin),
            (SYN, syn),
            (RST, rst),
            (PSH, psh),
            (ACK, ack),
            (URG, urg),
            (ECE, ece),
            (CWR, cwr),
            (NS, ns),
        ];
        for (number, set) in flags {
            w.bool(number, *set);
        }
    });
}
