//! One question to the kernel's connection tracker over ctnetlink: "which
//! connection has this tuple?" (`IPCTNL_MSG_CT_GET`). The answer's two tuples say
//! how netfilter translated it, e.g. a kube-proxy DNAT from a Service VIP to a pod.
//!
//! The request and the parser are written here: the message is four nested
//! attributes, and the maintained netlink crates cover only nflog/nfqueue of
//! `NETLINK_NETFILTER`. Constants are from `linux/netfilter/nfnetlink_conntrack.h`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_NEW: u16 = 0;
const IPCTNL_MSG_CT_GET: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HEADER: usize = 16;
const NFGENMSG: usize = 4;

const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;

/// A bound on how long the datapath thread can wait for the kernel; a lookup
/// normally answers in microseconds.
const RECEIVE_TIMEOUT: Duration = Duration::from_millis(20);

/// One direction of a connection as conntrack keys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub protocol: u8,
    /// The sender's address in this direction; both addresses share one family.
    pub source: IpAddr,
    /// The sender's port in this direction, host byte order.
    pub source_port: u16,
    /// The receiver's address in this direction (a Service VIP before DNAT).
    pub destination: IpAddr,
    /// The receiver's port in this direction, host byte order.
    pub destination_port: u16,
}

impl Tuple {
    /// The same connection seen from the other end.
    pub fn reversed(&self) -> Tuple {
        Tuple {
            protocol: self.protocol,
            source: self.destination,
            source_port: self.destination_port,
            destination: self.source,
            destination_port: self.source_port,
        }
    }
}

/// A conntrack entry: the tuple of the first packet and the tuple replies carry.
/// Without NAT, `reply == original.reversed()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The connection as its first packet addressed it (e.g. client to a Service VIP).
    pub original: Tuple,
    /// What replies carry after translation (e.g. the backend pod back to the client).
    pub reply: Tuple,
}

/// Which of an entry's tuples a query names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// The tuple is the direction of the connection's first packet (`CTA_TUPLE_ORIG`).
    Original,
    /// The tuple is the direction replies take (`CTA_TUPLE_REPLY`).
    Reply,
}

/// Why a conntrack lookup gave no answer. Callers treat every kind the same way (the
/// flow keeps its untranslated addresses); the kind is for the log.
#[derive(Debug, thiserror::Error)]
pub enum CtnetlinkError {
    /// The socket could not be created or configured (no `CAP_NET_ADMIN`, or
    /// `nf_conntrack_netlink` missing).
    #[error("opening a NETLINK_NETFILTER socket: {0}")]
    Open(#[source] io::Error),
    /// `sendto` failed.
    #[error("sending a conntrack query: {0}")]
    Send(#[source] io::Error),
    /// `recv` failed, including the 20 ms receive timeout expiring.
    #[error("reading the conntrack answer: {0}")]
    Receive(#[source] io::Error),
    /// The kernel answered with an error other than "no such entry".
    #[error("the kernel refused the conntrack query: {0}")]
    Kernel(#[source] io::Error),
    /// An earlier attempt to open the socket failed; lookups are not retried.
    #[error("no ctnetlink socket (opening it failed earlier)")]
    Unavailable,
    /// The answer did not parse; the text says which part was wrong.
    #[error("malformed ctnetlink answer: {0}")]
    Malformed(&'static str),
}

/// Asks conntrack about one tuple. A trait so the translation rules are tested
/// without a kernel.
pub trait ConntrackQuery {
    /// `Ok(None)` when the kernel has no such connection.
    fn get(&mut self, tuple: &Tuple, named: Named) -> Result<Option<Entry>, CtnetlinkError>;
}

impl<Q: ConntrackQuery + ?Sized> ConntrackQuery for Box<Q> {
    fn get(&mut self, tuple: &Tuple, named: Named) -> Result<Option<Entry>, CtnetlinkError> {
        (**self).get(tuple, named)
    }
}

/// A ctnetlink socket in the network namespace of the thread that opened it.
#[derive(Debug)]
pub(crate) struct Conntrack {
    socket: OwnedFd,
    sequence: u32,
    request: Vec<u8>,
    answer: Vec<u8>,
}

impl Conntrack {
    /// Opens the socket with a 20 ms receive timeout, so a silent kernel cannot stall
    /// the caller's thread.
    pub(crate) fn open() -> Result<Self, CtnetlinkError> {
        // SAFETY: plain socket(2) call; the descriptor is checked before it is owned.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, NETLINK_NETFILTER) };
        if fd < 0 {
            return Err(CtnetlinkError::Open(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let timeout = libc::timeval {
            tv_sec: 0,
            // The field's own type: `suseconds_t` is deprecated on musl, whose width changes.
            tv_usec: RECEIVE_TIMEOUT.subsec_micros() as _,
        };
        // SAFETY: `timeout` outlives the call and its size is passed with it.
        let set = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set < 0 {
            return Err(CtnetlinkError::Open(io::Error::last_os_error()));
        }
        Ok(Conntrack {
            socket,
            sequence: 0,
            request: Vec::with_capacity(128),
            answer: vec![0; 8192],
        })
    }
}

impl ConntrackQuery for Conntrack {
    fn get(&mut self, tuple: &Tuple, named: Named) -> Result<Option<Entry>, CtnetlinkError> {
        self.sequence = self.sequence.wrapping_add(1);
        encode_get(self.sequence, tuple, named, &mut self.request);
        // SAFETY: the kernel is the destination when the address is zeroed
        // (nl_pid 0); the buffer pointer and length describe `self.request`.
        let sent = unsafe {
            let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
            kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::sendto(
                self.socket.as_raw_fd(),
                self.request.as_ptr().cast(),
                self.request.len(),
                0,
                (&raw const kernel).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(CtnetlinkError::Send(io::Error::last_os_error()));
        }
        // Answers to earlier queries that timed out may still be queued: skip them.
        loop {
            // SAFETY: the pointer and length describe `self.answer`, owned by us.
            let received = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    self.answer.as_mut_ptr().cast(),
                    self.answer.len(),
                    0,
                )
            };
            if received < 0 {
                return Err(CtnetlinkError::Receive(io::Error::last_os_error()));
            }
            match parse_answer(&self.answer[..received as usize], self.sequence)? {
                Answer::Stale => continue,
                Answer::Entry(entry) => return Ok(Some(entry)),
                Answer::Missing => return Ok(None),
            }
        }
    }
}

/// Opens its socket on first use, on the thread (and so in the network namespace)
/// that asks; when the socket cannot be opened it says so once and answers errors.
#[derive(Debug, Default)]
pub(crate) struct LazyConntrack {
    socket: Option<Conntrack>,
    unavailable: bool,
}

impl ConntrackQuery for LazyConntrack {
    fn get(&mut self, tuple: &Tuple, named: Named) -> Result<Option<Entry>, CtnetlinkError> {
        if self.socket.is_none() && !self.unavailable {
            match Conntrack::open() {
                Ok(socket) => self.socket = Some(socket),
                Err(error) => {
                    tracing::warn!(%error, "Service backends cannot be read from conntrack; flows through Service addresses keep the Service address");
                    self.unavailable = true;
                }
            }
        }
        match &mut self.socket {
            Some(socket) => socket.get(tuple, named),
            None => Err(CtnetlinkError::Unavailable),
        }
    }
}

/// Builds an `IPCTNL_MSG_CT_GET` request naming `tuple` as the entry's original
/// or reply tuple.
pub(crate) fn encode_get(sequence: u32, tuple: &Tuple, named: Named, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; NLMSG_HEADER]);
    let family = match tuple.source {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    };
    // nfgenmsg: family, version 0, resource id 0.
    out.extend_from_slice(&[family as u8, 0, 0, 0]);
    let which = match named {
        Named::Original => CTA_TUPLE_ORIG,
        Named::Reply => CTA_TUPLE_REPLY,
    };
    nested(out, which, |out| {
        nested(out, CTA_TUPLE_IP, |out| match (tuple.source, tuple.destination) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                attribute(out, CTA_IP_V4_SRC, &s.octets());
                attribute(out, CTA_IP_V4_DST, &d.octets());
            }
            (s, d) => {
                attribute(out, CTA_IP_V6_SRC, &v6(s).octets());
                attribute(out, CTA_IP_V6_DST, &v6(d).octets());
            }
        });
        nested(out, CTA_TUPLE_PROTO, |out| {
            attribute(out, CTA_PROTO_NUM, &[tuple.protocol]);
            attribute(out, CTA_PROTO_SRC_PORT, &tuple.source_port.to_be_bytes());
            attribute(out, CTA_PROTO_DST_PORT, &tuple.destination_port.to_be_bytes());
        });
    });
    let length = out.len() as u32;
    out[0..4].copy_from_slice(&length.to_ne_bytes());
    let kind = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
    out[4..6].copy_from_slice(&kind.to_ne_bytes());
    out[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    out[8..12].copy_from_slice(&sequence.to_ne_bytes());
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

fn attribute(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let length = (4 + payload.len()) as u16;
    out.extend_from_slice(&length.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    pad(out);
}

fn nested(out: &mut Vec<u8>, kind: u16, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let length = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&length.to_ne_bytes());
    out[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

/// What one datagram from the kernel says about query `sequence`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The kernel's entry for the queried tuple.
    Entry(Entry),
    /// The kernel has no such connection (`ENOENT`).
    Missing,
    /// An answer to an earlier query.
    Stale,
}

/// Reads one datagram from the kernel; errors name what part of it is malformed.
pub(crate) fn parse_answer(datagram: &[u8], sequence: u32) -> Result<Answer, CtnetlinkError> {
    if datagram.len() < NLMSG_HEADER {
        return Err(CtnetlinkError::Malformed("shorter than a netlink header"));
    }
    let length = u32_at(datagram, 0) as usize;
    if length < NLMSG_HEADER || length > datagram.len() {
        return Err(CtnetlinkError::Malformed("netlink length outside the datagram"));
    }
    let kind = u16::from_ne_bytes([datagram[4], datagram[5]]);
    if u32_at(datagram, 8) != sequence {
        return Ok(Answer::Stale);
    }
    let body = &datagram[NLMSG_HEADER..length];
    if kind == NLMSG_ERROR {
        let code = body
            .get(0..4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(CtnetlinkError::Malformed("error message without a code"))?;
        return match -code {
            0 => Err(CtnetlinkError::Malformed("acknowledgement instead of an entry")),
            libc::ENOENT => Ok(Answer::Missing),
            errno => Err(CtnetlinkError::Kernel(io::Error::from_raw_os_error(errno))),
        };
    }
    if kind != (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW {
        return Err(CtnetlinkError::Malformed("not a conntrack entry"));
    }
    let attributes = body
        .get(NFGENMSG..)
        .ok_or(CtnetlinkError::Malformed("entry without nfgenmsg"))?;
    let (mut original, mut reply) = (None, None);
    for (kind, payload) in Attributes(attributes) {
        match kind {
            CTA_TUPLE_ORIG => original = Some(parse_tuple(payload)?),
            CTA_TUPLE_REPLY => reply = Some(parse_tuple(payload)?),
            _ => {}
        }
    }
    match (original, reply) {
        (Some(original), Some(reply)) => Ok(Answer::Entry(Entry { original, reply })),
        _ => Err(CtnetlinkError::Malformed("entry without both tuples")),
    }
}

fn parse_tuple(nested: &[u8]) -> Result<Tuple, CtnetlinkError> {
    let (mut source, mut destination) = (None, None);
    let (mut protocol, mut source_port, mut destination_port) = (None, 0, 0);
    for (kind, payload) in Attributes(nested) {
        match kind {
            CTA_TUPLE_IP => {
                for (kind, address) in Attributes(payload) {
                    let ip = match (kind, address.len()) {
                        (CTA_IP_V4_SRC | CTA_IP_V4_DST, 4) => {
                            IpAddr::V4(Ipv4Addr::new(address[0], address[1], address[2], address[3]))
                        }
                        (CTA_IP_V6_SRC | CTA_IP_V6_DST, 16) => {
                            let mut octets = [0; 16];
                            octets.copy_from_slice(address);
                            IpAddr::V6(Ipv6Addr::from(octets))
                        }
                        _ => continue,
                    };
                    match kind {
                        CTA_IP_V4_SRC | CTA_IP_V6_SRC => source = Some(ip),
                        _ => destination = Some(ip),
                    }
                }
            }
            CTA_TUPLE_PROTO => {
                for (kind, value) in Attributes(payload) {
                    match (kind, value) {
                        (CTA_PROTO_NUM, [number, ..]) => protocol = Some(*number),
                        (CTA_PROTO_SRC_PORT, [high, low, ..]) => source_port = u16::from_be_bytes([*high, *low]),
                        (CTA_PROTO_DST_PORT, [high, low, ..]) => destination_port = u16::from_be_bytes([*high, *low]),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    match (source, destination, protocol) {
        (Some(source), Some(destination), Some(protocol)) => Ok(Tuple {
            protocol,
            source,
            source_port,
            destination,
            destination_port,
        }),
        _ => Err(CtnetlinkError::Malformed("tuple without addresses or protocol")),
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Netlink attributes in a buffer; stops at the first one that does not fit.
struct Attributes<'a>(&'a [u8]);

impl<'a> Iterator for Attributes<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.0.get(0..4)?;
        let length = u16::from_ne_bytes([header[0], header[1]]) as usize;
        let kind = u16::from_ne_bytes([header[2], header[3]]) & NLA_TYPE_MASK;
        let payload = self.0.get(4..length)?;
        self.0 = self.0.get(length.next_multiple_of(4)..).unwrap_or(&[]);
        Some((kind, payload))
    }
}

#[cfg(test)]
#[path = "ctnetlink_tests.rs"]
mod tests;
