use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::datapath::ctnetlink::CtnetlinkError;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const GATEWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const BACKEND: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10));
const SECOND: i128 = 1_000_000_000;
const T0: i128 = 1_700_000_000 * SECOND;

fn tcp(source: IpAddr, source_port: u16, destination: IpAddr, destination_port: u16) -> Tuple {
    Tuple {
        protocol: 6,
        source,
        source_port,
        destination,
        destination_port,
    }
}

/// Conntrack as a table of original tuple → answer, counting the questions.
#[derive(Default)]
struct Table {
    entries: HashMap<Tuple, Result<Entry, i32>>,
    asked: usize,
}

impl ConntrackQuery for Table {
    fn get(&mut self, tuple: &Tuple, named: Named) -> Result<Option<Entry>, CtnetlinkError> {
        assert_eq!(named, Named::Original);
        self.asked += 1;
        match self.entries.get(tuple) {
            None => Ok(None),
            Some(Ok(entry)) => Ok(Some(*entry)),
            Some(Err(errno)) => Err(CtnetlinkError::Kernel(std::io::Error::from_raw_os_error(*errno))),
        }
    }
}

fn client_to_vip() -> Tuple {
    tcp(CLIENT, 40000, VIP, 80)
}

/// kube-proxy's DNAT to the backend's 8080, masqueraded to the gateway.
fn dnat_entry() -> Entry {
    Entry {
        original: client_to_vip(),
        reply: tcp(BACKEND, 8080, GATEWAY, 41000),
    }
}

fn translator(entries: impl IntoIterator<Item = (Tuple, Result<Entry, i32>)>, capacity: usize) -> Translator<Table> {
    Translator::new(
        Table {
            entries: entries.into_iter().collect(),
            asked: 0,
        },
        capacity,
    )
}

#[test]
fn one_query_names_the_backend_on_all_four_flows_of_a_connection() {
    let mut t = translator([(client_to_vip(), Ok(dnat_entry()))], 16);
    let backend = (BACKEND, 8080);
    assert_eq!(
        t.resolve(&client_to_vip(), true, false, T0),
        Some(Translated::ToService { service: VIP, backend })
    );
    assert_eq!(
        t.resolve(&client_to_vip().reversed(), false, true, T0 + 1),
        Some(Translated::FromService { service: VIP, backend })
    );
    // At the backend's veth: translated and masqueraded.
    let at_backend = tcp(GATEWAY, 41000, BACKEND, 8080);
    assert_eq!(
        t.resolve(&at_backend, false, false, T0 + 2),
        Some(Translated::ToBackend { service: VIP })
    );
    assert_eq!(
        t.resolve(&at_backend.reversed(), false, false, T0 + 3),
        Some(Translated::FromBackend { service: VIP })
    );
    assert_eq!(t.query.asked, 1);
}

#[test]
fn flows_that_touch_no_service_are_never_asked_about() {
    let mut t = translator([], 16);
    assert!(!t.has_translations());
    assert_eq!(t.resolve(&tcp(CLIENT, 1, BACKEND, 2), false, false, T0), None);
    assert_eq!(t.query.asked, 0);
}

#[test]
fn an_untranslated_or_snat_only_entry_is_not_a_backend_and_is_asked_once() {
    let snat_only = Entry {
        original: client_to_vip(),
        reply: tcp(VIP, 80, GATEWAY, 41000),
    };
    let mut t = translator([(client_to_vip(), Ok(snat_only))], 16);
    for i in 0..5 {
        assert_eq!(t.resolve(&client_to_vip(), true, false, T0 + i), None);
    }
    assert_eq!(t.query.asked, 1);
    assert!(!t.has_translations());
}

#[test]
fn a_missing_entry_is_retried_once_then_believed_briefly() {
    let mut t = translator([], 16);
    assert_eq!(t.resolve(&client_to_vip(), true, false, T0), None);
    assert_eq!(t.query.asked, 2, "one retry for the first-packet race");
    assert_eq!(t.resolve(&client_to_vip(), true, false, T0 + SECOND / 20), None);
    assert_eq!(t.query.asked, 2, "cached within MISSING_TTL");
    t.query.entries.insert(client_to_vip(), Ok(dnat_entry()));
    assert!(matches!(
        t.resolve(&client_to_vip(), true, false, T0 + SECOND / 5),
        Some(Translated::ToService { .. })
    ));
    assert_eq!(t.query.asked, 3);
}

#[test]
fn answers_expire_so_a_reused_tuple_finds_its_new_backend() {
    let mut t = translator([(client_to_vip(), Ok(dnat_entry()))], 16);
    t.resolve(&client_to_vip(), true, false, T0);
    let other_backend = Entry {
        original: client_to_vip(),
        reply: tcp(CLIENT, 9090, GATEWAY, 41000),
    };
    t.query.entries.insert(client_to_vip(), Ok(other_backend));
    assert_eq!(
        t.resolve(&client_to_vip(), true, false, T0 + 5 * SECOND),
        Some(Translated::ToService {
            service: VIP,
            backend: (BACKEND, 8080)
        })
    );
    assert_eq!(
        t.resolve(&client_to_vip(), true, false, T0 + 11 * SECOND),
        Some(Translated::ToService {
            service: VIP,
            backend: (CLIENT, 9090)
        })
    );
    // The old connection's backend-side alias has expired too.
    assert_eq!(
        t.resolve(&tcp(GATEWAY, 41000, BACKEND, 8080), false, false, T0 + 21 * SECOND),
        None
    );
}

#[test]
fn kernel_errors_leave_the_flow_as_observed() {
    let mut t = translator([(client_to_vip(), Err(libc::EPERM))], 16);
    assert_eq!(t.resolve(&client_to_vip(), true, false, T0), None);
}

#[test]
fn the_cache_stays_within_its_capacity() {
    let connections: Vec<(Tuple, Result<Entry, i32>)> = (0..10u16)
        .map(|port| {
            let original = tcp(CLIENT, 30000 + port, VIP, 80);
            let entry = Entry {
                original,
                reply: tcp(BACKEND, 8080, GATEWAY, 30000 + port),
            };
            (original, Ok(entry))
        })
        .collect();
    let originals: Vec<Tuple> = connections.iter().map(|(t, _)| *t).collect();
    let mut t = translator(connections, 4);
    for original in &originals {
        assert!(t.resolve(original, true, false, T0).is_some());
        assert!(t.connections.len() <= 4, "{}", t.connections.len());
        assert!(t.aliases.len() <= 8, "{}", t.aliases.len());
    }
    // Forgotten connections are asked again, and still answer correctly.
    let asked = t.query.asked;
    assert!(t.resolve(&originals[0], true, false, T0).is_some());
    assert_eq!(t.query.asked, asked + 1);
}

#[test]
fn rewrite_replaces_the_address_and_port_in_every_form_the_flow_carries() {
    use sightline_proto::flow::{Flow, Ip, Layer4, Udp, layer4};
    let mut record = FlowRecord::new(Flow {
        ip: Some(Ip {
            source: CLIENT.to_string(),
            destination: VIP.to_string(),
            ..Ip::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(Udp {
                source_port: 40000,
                destination_port: 53,
            })),
        }),
        ..Flow::default()
    });
    record.addresses = Some((CLIENT, VIP));
    let tuple = flow_tuple(record.flow.l4.as_ref(), CLIENT, VIP).expect("UDP has a tuple");
    assert_eq!(
        (tuple.protocol, tuple.source_port, tuple.destination_port),
        (17, 40000, 53)
    );

    rewrite(&mut record, End::Destination, (BACKEND, 5353));
    assert_eq!(record.addresses, Some((CLIENT, BACKEND)));
    let ip = record.flow.ip.as_ref().expect("ip");
    assert_eq!((ip.source.as_str(), ip.destination.as_str()), ("10.0.0.2", "10.0.0.3"));
    assert_eq!(
        record.flow.l4.as_ref().and_then(|l4| l4.protocol.clone()),
        Some(layer4::Protocol::Udp(Udp {
            source_port: 40000,
            destination_port: 5353,
        }))
    );
    rewrite(&mut record, End::Source, (GATEWAY, 1));
    assert_eq!(record.addresses, Some((GATEWAY, BACKEND)));
}

#[test]
fn flows_without_ports_have_no_tuple() {
    assert_eq!(flow_tuple(None, CLIENT, VIP), None);
}
