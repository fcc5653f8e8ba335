//! Which Service backend a flow really reaches when kube-proxy (or anything else
//! doing DNAT in netfilter) translated a Service address.
//!
//! The datapath sees a client's packets before netfilter translates them, so the
//! flow at the client's veth is addressed to the VIP; the flow at the backend's veth
//! is already translated. Conntrack knows both tuples. One query per connection
//! (keyed by its original tuple) answers every flow of it: the client-side flows
//! through the VIP, and, through aliases of the translated tuple, the backend side.
//! Cache hits read the flow's own timestamp, so they cost a hash lookup and no
//! system call; a missing entry is cached briefly so it is not asked per packet.

use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use sightline_proto::flow::{Layer4, layer4};

use crate::datapath::ctnetlink::{ConntrackQuery, Entry, Named, Tuple};
use crate::flow_record::FlowRecord;

/// A connection's NAT is fixed by its first packet, so answers stay valid while the
/// tuple lives; they expire so a reused tuple is asked again.
const ANSWER_TTL: Duration = Duration::from_secs(10);
/// The first packet can reach userspace before netfilter confirms its entry:
/// "no entry" is only believed for this long.
const MISSING_TTL: Duration = Duration::from_millis(100);
/// One retry after this pause covers that race for the connection's first packet.
const MISSING_RETRY_AFTER: Duration = Duration::from_micros(200);
/// Bound on remembered connections (each stored once, plus two aliases).
pub const DEFAULT_CAPACITY: usize = 65_536;

/// How a flow relates to a translated Service connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translated {
    /// Client → VIP, seen before DNAT: the packet actually goes to `backend`.
    ToService { service: IpAddr, backend: (IpAddr, u16) },
    /// VIP → client, seen after un-DNAT: the packet actually came from `backend`.
    FromService { service: IpAddr, backend: (IpAddr, u16) },
    /// Client → backend, seen after DNAT.
    ToBackend { service: IpAddr },
    /// Backend → client, seen before un-DNAT.
    FromBackend { service: IpAddr },
}

#[derive(Debug, Clone, Copy)]
enum Known {
    Translated(Entry),
    Untranslated,
    Missing,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    known: Known,
    expires: i128,
}

#[derive(Debug, Clone, Copy)]
struct Alias {
    service: IpAddr,
    /// True for the backend → client direction.
    reply: bool,
    expires: i128,
}

/// The per-connection cache in front of conntrack.
pub struct Translator<Q> {
    query: Q,
    connections: FxHashMap<Tuple, Slot>,
    aliases: FxHashMap<Tuple, Alias>,
    capacity: usize,
}

impl<Q: ConntrackQuery> Translator<Q> {
    pub fn new(query: Q, capacity: usize) -> Self {
        Translator {
            query,
            connections: FxHashMap::default(),
            aliases: FxHashMap::default(),
            capacity,
        }
    }

    /// Whether any translated connection is remembered: when none is, flows that
    /// touch no Service address cannot be one and need no lookup at all.
    pub fn has_translations(&self) -> bool {
        !self.aliases.is_empty()
    }

    /// `flow` as observed; `to_service`/`from_service` say whether its destination
    /// or source is a Service address. `now` is the flow's time in Unix nanoseconds.
    pub fn resolve(&mut self, flow: &Tuple, to_service: bool, from_service: bool, now: i128) -> Option<Translated> {
        if to_service {
            let entry = self.connection(flow, now)?;
            let backend = (entry.reply.source, entry.reply.source_port);
            return Some(Translated::ToService {
                service: flow.destination,
                backend,
            });
        }
        if from_service {
            let entry = self.connection(&flow.reversed(), now)?;
            let backend = (entry.reply.source, entry.reply.source_port);
            return Some(Translated::FromService {
                service: flow.source,
                backend,
            });
        }
        if self.aliases.is_empty() {
            return None;
        }
        let alias = self.aliases.get(flow).filter(|a| a.expires > now)?;
        Some(if alias.reply {
            Translated::FromBackend { service: alias.service }
        } else {
            Translated::ToBackend { service: alias.service }
        })
    }

    fn connection(&mut self, original: &Tuple, now: i128) -> Option<Entry> {
        if let Some(slot) = self.connections.get(original).filter(|s| s.expires > now) {
            return match slot.known {
                Known::Translated(entry) => Some(entry),
                Known::Untranslated | Known::Missing => None,
            };
        }
        let known = self.ask(original);
        let ttl = match known {
            Known::Missing => MISSING_TTL,
            Known::Translated(_) | Known::Untranslated => ANSWER_TTL,
        };
        let expires = now + ttl.as_nanos() as i128;
        self.make_room(now);
        self.connections.insert(*original, Slot { known, expires });
        match known {
            Known::Translated(entry) => {
                let service = entry.original.destination;
                self.aliases.insert(
                    entry.reply,
                    Alias {
                        service,
                        reply: true,
                        expires,
                    },
                );
                self.aliases.insert(
                    entry.reply.reversed(),
                    Alias {
                        service,
                        reply: false,
                        expires,
                    },
                );
                Some(entry)
            }
            Known::Untranslated | Known::Missing => None,
        }
    }

    fn ask(&mut self, original: &Tuple) -> Known {
        let mut answer = self.query.get(original, Named::Original);
        if matches!(answer, Ok(None)) {
            std::thread::sleep(MISSING_RETRY_AFTER);
            answer = self.query.get(original, Named::Original);
        }
        match answer {
            // Only a destination rewrite matters here: an entry with SNAT alone
            // (masquerade) still reaches the address the client named.
            Ok(Some(entry))
                if (entry.reply.source, entry.reply.source_port)
                    != (entry.original.destination, entry.original.destination_port) =>
            {
                Known::Translated(entry)
            }
            Ok(Some(_)) => Known::Untranslated,
            Ok(None) => Known::Missing,
            Err(error) => {
                tracing::debug!(%error, ?original, "conntrack lookup failed");
                Known::Missing
            }
        }
    }

    /// Keeps the maps within `capacity`: expired entries go first; if the live ones
    /// still fill it, everything goes (the next packet of each connection asks again).
    fn make_room(&mut self, now: i128) {
        if self.connections.len() < self.capacity {
            return;
        }
        self.connections.retain(|_, slot| slot.expires > now);
        self.aliases.retain(|_, alias| alias.expires > now);
        if self.connections.len() >= self.capacity {
            self.connections.clear();
            self.aliases.clear();
        }
    }
}

/// The conntrack tuple of a flow with ports (TCP, UDP, SCTP: what Services carry).
pub fn flow_tuple(l4: Option<&Layer4>, source: IpAddr, destination: IpAddr) -> Option<Tuple> {
    let (protocol, source_port, destination_port) = match l4?.protocol.as_ref()? {
        layer4::Protocol::Tcp(tcp) => (libc::IPPROTO_TCP, tcp.source_port, tcp.destination_port),
        layer4::Protocol::Udp(udp) => (libc::IPPROTO_UDP, udp.source_port, udp.destination_port),
        layer4::Protocol::Sctp(sctp) => (libc::IPPROTO_SCTP, sctp.source_port, sctp.destination_port),
        _ => return None,
    };
    Some(Tuple {
        protocol: protocol as u8,
        source,
        source_port: u16::try_from(source_port).ok()?,
        destination,
        destination_port: u16::try_from(destination_port).ok()?,
    })
}

/// Which end of a flow an address rewrite applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Source,
    Destination,
}

/// Replaces one end's address and port with the backend's, in whichever form the
/// flow carries them, as Cilium's datapath shows it (it never reports a VIP).
pub fn rewrite(record: &mut FlowRecord, end: End, (ip, port): (IpAddr, u16)) {
    if let Some((source, destination)) = &mut record.addresses {
        *match end {
            End::Source => source,
            End::Destination => destination,
        } = ip;
    }
    if let Some(flow_ip) = &mut record.flow.ip {
        *match end {
            End::Source => &mut flow_ip.source,
            End::Destination => &mut flow_ip.destination,
        } = ip.to_string();
    }
    let port = u32::from(port);
    let ports = match record.flow.l4.as_mut().and_then(|l4| l4.protocol.as_mut()) {
        Some(layer4::Protocol::Tcp(tcp)) => (&mut tcp.source_port, &mut tcp.destination_port),
        Some(layer4::Protocol::Udp(udp)) => (&mut udp.source_port, &mut udp.destination_port),
        Some(layer4::Protocol::Sctp(sctp)) => (&mut sctp.source_port, &mut sctp.destination_port),
        _ => return,
    };
    *match end {
        End::Source => ports.0,
        End::Destination => ports.1,
    } = port;
}

#[cfg(test)]
#[path = "translation_tests.rs"]
mod tests;
