//! Which Service backend a flow really reaches when kube-proxy (or anything else
//! doing DNAT in netfilter) translated a Service address.
//!
//! The datapath sees a client's packets before netfilter translates them, so the
//! flow at the client's veth is addressed to the VIP; the flow at the backend's veth
//! is already translated. Conntrack knows both tuples. One query per connection
//! (keyed by its original tuple) answers every flow of it: the client-side flows
//! through the VIP, and, through aliases of the translated tuple, the backend side.
//! A connection whose client is not seen here (a remote client through a NodePort
//! or external IP, masqueraded by this node) is found from the backend's side by
//! its reply tuple. Cache hits read the flow's own timestamp, so they cost a hash
//! lookup and no system call; a missing entry is cached briefly so it is not asked
//! per packet.

use std::net::IpAddr;
use std::time::Duration;

use rustc_hash::FxHashMap;

use sightline_proto::flow::{Ip, IpVersion, Layer4, layer4};

use crate::datapath::ctnetlink::{ConntrackQuery, Entry, Named, Tuple};
use crate::flow_record::FlowRecord;

/// A connection's NAT is fixed by its first packet, so answers stay valid while the
/// tuple lives; they expire so a reused tuple is asked again.
const ANSWER_TTL: Duration = Duration::from_secs(10);
/// "No entry" is only believed for this long: the entry may appear (a reply lookup
/// racing the connection's first packet).
const MISSING_TTL: Duration = Duration::from_millis(100);
/// Bound on remembered connections (each stored once, plus two aliases).
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;

/// How a flow relates to a translated Service connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Translated {
    /// Client → VIP, seen before DNAT: the packet actually goes to `backend`;
    /// `source_xlated` is the address netfilter masqueraded the client to, if any.
    ToService {
        service: IpAddr,
        backend: (IpAddr, u16),
        source_xlated: Option<IpAddr>,
    },
    /// VIP → client, seen after un-DNAT: the packet actually came from `backend`.
    FromService { service: IpAddr, backend: (IpAddr, u16) },
    /// Client → backend, seen after DNAT (and masquerade): `client` is who sent it
    /// before netfilter rewrote its source; `service` the address and port it sent
    /// to (a Service address, or a node address and NodePort).
    ToBackend {
        service: (IpAddr, u16),
        client: (IpAddr, u16),
    },
    /// Backend → client, seen before un-DNAT (and un-masquerade): `client` is who
    /// receives it once netfilter restored the destination.
    FromBackend {
        service: (IpAddr, u16),
        client: (IpAddr, u16),
    },
}

/// What the translator can say about a flow now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    Translated(Translated),
    /// Not a translated connection, as far as conntrack knows.
    Plain,
    /// The flow goes to a Service address but conntrack has no entry yet: its first
    /// packet can reach userspace before netfilter confirms the connection. Asking
    /// again a little later (see [`RETRY_AFTER`]) usually answers; a second miss is
    /// believed for a while.
    Unconfirmed,
}

/// How long a flow whose connection is [`Resolution::Unconfirmed`] is held back
/// before it is asked about again.
pub(crate) const RETRY_AFTER: Duration = Duration::from_micros(200);

#[derive(Debug, Clone, Copy)]
enum Known {
    Translated(Entry),
    Untranslated,
    /// Missing at the first question: the next question asks again at once.
    Unconfirmed,
    Missing,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    known: Known,
    expires: i128,
}

#[derive(Debug, Clone, Copy)]
enum AliasKind {
    /// The client → backend direction of a translated connection.
    ToBackend(Entry),
    /// The backend → client direction.
    FromBackend(Entry),
    /// A reply lookup found no translation for this tuple.
    Plain,
}

#[derive(Debug, Clone, Copy)]
struct Alias {
    kind: AliasKind,
    expires: i128,
}

/// Which ends of a flow are pods: only a pod can be a Service backend that a
/// reply lookup would find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PodEnds {
    pub source: bool,
    pub destination: bool,
}

/// The per-connection cache in front of conntrack.
pub(crate) struct Translator<Q> {
    query: Q,
    connections: FxHashMap<Tuple, Slot>,
    aliases: FxHashMap<Tuple, Alias>,
    capacity: usize,
}

impl<Q: ConntrackQuery> Translator<Q> {
    pub(crate) fn new(query: Q, capacity: usize) -> Self {
        Translator {
            query,
            connections: FxHashMap::default(),
            aliases: FxHashMap::default(),
            capacity,
        }
    }

    /// `flow` as observed; `to_service`/`from_service` say whether its destination
    /// or source is a Service address, `pods` which ends are pods. `now` is the
    /// flow's time in Unix nanoseconds.
    pub(crate) fn resolve(
        &mut self,
        flow: &Tuple,
        to_service: bool,
        from_service: bool,
        pods: PodEnds,
        now: i128,
    ) -> Resolution {
        if to_service {
            return match self.connection(flow, now) {
                Known::Translated(entry) => Resolution::Translated(Translated::ToService {
                    service: flow.destination,
                    backend: (entry.reply.source, entry.reply.source_port),
                    source_xlated: (entry.reply.destination != entry.original.source)
                        .then_some(entry.reply.destination),
                }),
                Known::Unconfirmed => Resolution::Unconfirmed,
                Known::Untranslated | Known::Missing => Resolution::Plain,
            };
        }
        if from_service {
            return match self.connection(&flow.reversed(), now) {
                Known::Translated(entry) => Resolution::Translated(Translated::FromService {
                    service: flow.source,
                    backend: (entry.reply.source, entry.reply.source_port),
                }),
                // Replies come after the request, which already waited for the entry.
                Known::Unconfirmed | Known::Untranslated | Known::Missing => Resolution::Plain,
            };
        }
        if !pods.source && !pods.destination {
            return Resolution::Plain;
        }
        if let Some(alias) = self.aliases.get(flow).filter(|a| a.expires > now) {
            return alias_resolution(alias.kind);
        }
        self.by_reply(flow, pods, now)
    }

    /// Looks the flow up as the reply tuple of a connection whose client this node
    /// did not see: the backend's end of the flow is the reply's source.
    fn by_reply(&mut self, flow: &Tuple, pods: PodEnds, now: i128) -> Resolution {
        let candidates = [pods.destination.then(|| flow.reversed()), pods.source.then_some(*flow)];
        let mut known = Known::Untranslated;
        for reply in candidates.into_iter().flatten() {
            known = self.ask(&reply, Named::Reply);
            if let Known::Translated(entry) = known {
                let expires = now + ANSWER_TTL.as_nanos() as i128;
                self.make_room(now);
                self.remember_aliases(entry, expires);
                if let Some(alias) = self.aliases.get(flow) {
                    return alias_resolution(alias.kind);
                }
            }
        }
        let ttl = match known {
            Known::Untranslated => ANSWER_TTL,
            _ => MISSING_TTL,
        };
        self.make_room(now);
        self.aliases.insert(
            *flow,
            Alias {
                kind: AliasKind::Plain,
                expires: now + ttl.as_nanos() as i128,
            },
        );
        Resolution::Plain
    }

    fn connection(&mut self, original: &Tuple, now: i128) -> Known {
        let previous = self.connections.get(original).copied();
        if let Some(slot) = previous.filter(|s| s.expires > now) {
            return slot.known;
        }
        let mut known = self.ask(original, Named::Original);
        let first_question = previous.is_none_or(|slot| !matches!(slot.known, Known::Unconfirmed));
        if matches!(known, Known::Missing) && first_question {
            known = Known::Unconfirmed;
        }
        let ttl = match known {
            Known::Missing => MISSING_TTL,
            // Expires at once: the next flow of the connection asks again.
            Known::Unconfirmed => Duration::ZERO,
            Known::Translated(_) | Known::Untranslated => ANSWER_TTL,
        };
        let expires = now + ttl.as_nanos() as i128;
        self.make_room(now);
        self.connections.insert(*original, Slot { known, expires });
        if let Known::Translated(entry) = known {
            self.remember_aliases(entry, expires);
        }
        known
    }

    /// The backend side of a translated connection names it through these.
    fn remember_aliases(&mut self, entry: Entry, expires: i128) {
        self.aliases.insert(
            entry.reply,
            Alias {
                kind: AliasKind::FromBackend(entry),
                expires,
            },
        );
        self.aliases.insert(
            entry.reply.reversed(),
            Alias {
                kind: AliasKind::ToBackend(entry),
                expires,
            },
        );
    }

    fn ask(&mut self, tuple: &Tuple, named: Named) -> Known {
        match self.query.get(tuple, named) {
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
                tracing::debug!(%error, ?tuple, ?named, "conntrack lookup failed");
                Known::Missing
            }
        }
    }

    /// Keeps the maps within `capacity`: expired entries go first; if the live ones
    /// still fill it, everything goes (the next packet of each connection asks again).
    fn make_room(&mut self, now: i128) {
        // Each connection has two aliases; plain tuples one each.
        if self.connections.len() < self.capacity && self.aliases.len() < 2 * self.capacity {
            return;
        }
        self.connections.retain(|_, slot| slot.expires > now);
        self.aliases.retain(|_, alias| alias.expires > now);
        if self.connections.len() >= self.capacity || self.aliases.len() >= 2 * self.capacity {
            self.connections.clear();
            self.aliases.clear();
        }
    }
}

fn alias_resolution(kind: AliasKind) -> Resolution {
    let client = |entry: Entry| (entry.original.source, entry.original.source_port);
    let service = |entry: Entry| (entry.original.destination, entry.original.destination_port);
    match kind {
        AliasKind::ToBackend(entry) => Resolution::Translated(Translated::ToBackend {
            service: service(entry),
            client: client(entry),
        }),
        AliasKind::FromBackend(entry) => Resolution::Translated(Translated::FromBackend {
            service: service(entry),
            client: client(entry),
        }),
        AliasKind::Plain => Resolution::Plain,
    }
}

/// (IP protocol number, source port, destination port) of a flow with ports (TCP,
/// UDP, SCTP: what Services carry).
pub(crate) fn flow_ports(l4: Option<&Layer4>) -> Option<(u8, u16, u16)> {
    let (protocol, source_port, destination_port) = match l4?.protocol.as_ref()? {
        layer4::Protocol::Tcp(tcp) => (libc::IPPROTO_TCP, tcp.source_port, tcp.destination_port),
        layer4::Protocol::Udp(udp) => (libc::IPPROTO_UDP, udp.source_port, udp.destination_port),
        layer4::Protocol::Sctp(sctp) => (libc::IPPROTO_SCTP, sctp.source_port, sctp.destination_port),
        _ => return None,
    };
    Some((
        protocol as u8,
        u16::try_from(source_port).ok()?,
        u16::try_from(destination_port).ok()?,
    ))
}

/// The conntrack tuple of a flow with ports.
pub(crate) fn flow_tuple(l4: Option<&Layer4>, source: IpAddr, destination: IpAddr) -> Option<Tuple> {
    let (protocol, source_port, destination_port) = flow_ports(l4)?;
    Some(Tuple {
        protocol,
        source,
        source_port,
        destination,
        destination_port,
    })
}

/// Which end of a flow an address rewrite applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Source,
    Destination,
}

/// Replaces one end's address and port with the backend's, in whichever form the
/// flow carries them, as Cilium's datapath shows it (it never reports a VIP).
pub(crate) fn rewrite(record: &mut FlowRecord, end: End, (ip, port): (IpAddr, u16)) {
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

/// Sets `IP.source_xlated`: the address netfilter rewrote the source to, when the
/// flow's `source` is the address before that rewrite (Hubble's field comment).
pub(crate) fn set_source_xlated(record: &mut FlowRecord, xlated: IpAddr) {
    if record.flow.ip.is_none()
        && let Some((source, destination)) = record.addresses
    {
        // The deferred form has no room for it: the record carries the message.
        record.flow.ip = Some(Ip {
            source: source.to_string(),
            destination: destination.to_string(),
            ip_version: match source {
                IpAddr::V4(_) => IpVersion::IPv4,
                IpAddr::V6(_) => IpVersion::IPv6,
            } as i32,
            ..Ip::default()
        });
    }
    if let Some(ip) = &mut record.flow.ip {
        ip.source_xlated = xlated.to_string();
    }
}

#[cfg(test)]
#[path = "translation_tests.rs"]
mod tests;
