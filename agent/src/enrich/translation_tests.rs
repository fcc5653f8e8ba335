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

/// Conntrack as a table of original tuple → answer, counting the questions; a
/// question by reply tuple finds the entry whose reply tuple it is.
#[derive(Default)]
struct Table {
    entries: HashMap<Tuple, Result<Entry, i32>>,
    asked: usize,
    asked_by_reply: usize,
}

impl ConntrackQuery for Table {
    fn get(&mut self, tuple: &Tuple, named: Named) -> Result<Option<Entry>, CtnetlinkError> {
        self.asked += 1;
        let found = match named {
            Named::Original => self.entries.get(tuple),
            Named::Reply => {
                self.asked_by_reply += 1;
                self.entries
                    .values()
                    .find(|answer| matches!(answer, Ok(entry) if entry.reply == *tuple))
            }
        };
        match found {
            None => Ok(None),
            Some(Ok(entry)) => Ok(Some(*entry)),
            Some(Err(errno)) => Err(CtnetlinkError::Kernel(std::io::Error::from_raw_os_error(*errno))),
        }
    }
}

const NO_PODS: PodEnds = PodEnds {
    source: false,
    destination: false,
};
const POD_DESTINATION: PodEnds = PodEnds {
    source: false,
    destination: true,
};
const POD_SOURCE: PodEnds = PodEnds {
    source: true,
    destination: false,
};

fn translated(resolution: Resolution) -> Option<Translated> {
    match resolution {
        Resolution::Translated(translated) => Some(translated),
        Resolution::Plain | Resolution::Unconfirmed => None,
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
            ..Table::default()
        },
        capacity,
    )
}

#[test]
fn one_query_names_the_backend_on_all_four_flows_of_a_connection() {
    let mut t = translator([(client_to_vip(), Ok(dnat_entry()))], 16);
    let backend = (BACKEND, 8080);
    let client = (CLIENT, 40000);
    assert_eq!(
        t.resolve(&client_to_vip(), true, false, NO_PODS, T0),
        Resolution::Translated(Translated::ToService {
            service: VIP,
            backend,
            source_xlated: Some(GATEWAY),
        })
    );
    assert_eq!(
        t.resolve(&client_to_vip().reversed(), false, true, NO_PODS, T0 + 1),
        Resolution::Translated(Translated::FromService { service: VIP, backend })
    );
    // At the backend's veth: translated and masqueraded.
    let at_backend = tcp(GATEWAY, 41000, BACKEND, 8080);
    assert_eq!(
        t.resolve(&at_backend, false, false, POD_DESTINATION, T0 + 2),
        Resolution::Translated(Translated::ToBackend {
            service: (VIP, 80),
            client
        })
    );
    assert_eq!(
        t.resolve(&at_backend.reversed(), false, false, POD_SOURCE, T0 + 3),
        Resolution::Translated(Translated::FromBackend {
            service: (VIP, 80),
            client
        })
    );
    assert_eq!(t.query.asked, 1);
}

#[test]
fn a_connection_whose_client_is_elsewhere_is_found_by_its_reply_tuple_at_the_backend() {
    // A remote client through a NodePort on this node, masqueraded to the gateway.
    let remote = IpAddr::V4(Ipv4Addr::new(192, 168, 7, 9));
    let node_port = tcp(remote, 50000, GATEWAY, 30080);
    let entry = Entry {
        original: node_port,
        reply: tcp(BACKEND, 8080, GATEWAY, 42000),
    };
    let mut t = translator([(node_port, Ok(entry))], 16);
    let at_backend = tcp(GATEWAY, 42000, BACKEND, 8080);
    let expected_client = (remote, 50000);
    assert_eq!(
        t.resolve(&at_backend, false, false, POD_DESTINATION, T0),
        Resolution::Translated(Translated::ToBackend {
            service: (GATEWAY, 30080),
            client: expected_client
        })
    );
    assert_eq!(
        t.resolve(&at_backend.reversed(), false, false, POD_SOURCE, T0 + 1),
        Resolution::Translated(Translated::FromBackend {
            service: (GATEWAY, 30080),
            client: expected_client
        })
    );
    assert_eq!(
        (t.query.asked, t.query.asked_by_reply),
        (1, 1),
        "one question per connection"
    );
}

#[test]
fn a_pod_connection_without_translation_is_asked_once_then_cached() {
    let mut t = translator([], 16);
    let pod_to_pod = tcp(CLIENT, 1, BACKEND, 2);
    let both = PodEnds {
        source: true,
        destination: true,
    };
    for i in 0..5 {
        assert_eq!(t.resolve(&pod_to_pod, false, false, both, T0 + i), Resolution::Plain);
    }
    assert_eq!(t.query.asked, 2, "both ends asked by reply tuple, once");
}

#[test]
fn flows_that_touch_no_service_and_no_pod_are_never_asked_about() {
    let mut t = translator([], 16);
    assert_eq!(
        t.resolve(&tcp(CLIENT, 1, BACKEND, 2), false, false, NO_PODS, T0),
        Resolution::Plain
    );
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
        assert_eq!(
            t.resolve(&client_to_vip(), true, false, NO_PODS, T0 + i),
            Resolution::Plain
        );
    }
    assert_eq!(t.query.asked, 1);
}

#[test]
fn a_first_miss_is_unconfirmed_the_next_question_asks_again_then_a_miss_is_believed_briefly() {
    let mut t = translator([], 16);
    assert_eq!(
        t.resolve(&client_to_vip(), true, false, NO_PODS, T0),
        Resolution::Unconfirmed
    );
    assert_eq!(t.query.asked, 1, "no waiting inside the lookup");
    assert_eq!(t.resolve(&client_to_vip(), true, false, NO_PODS, T0), Resolution::Plain);
    assert_eq!(t.query.asked, 2, "asked again at once");
    assert_eq!(
        t.resolve(&client_to_vip(), true, false, NO_PODS, T0 + SECOND / 20),
        Resolution::Plain
    );
    assert_eq!(t.query.asked, 2, "cached within MISSING_TTL");
    t.query.entries.insert(client_to_vip(), Ok(dnat_entry()));
    assert!(matches!(
        t.resolve(&client_to_vip(), true, false, NO_PODS, T0 + SECOND / 5),
        Resolution::Translated(Translated::ToService { .. })
    ));
    assert_eq!(t.query.asked, 3);
}

#[test]
fn a_first_miss_that_conntrack_then_confirms_is_translated() {
    let mut t = translator([], 16);
    assert_eq!(
        t.resolve(&client_to_vip(), true, false, NO_PODS, T0),
        Resolution::Unconfirmed
    );
    t.query.entries.insert(client_to_vip(), Ok(dnat_entry()));
    assert!(matches!(
        t.resolve(&client_to_vip(), true, false, NO_PODS, T0),
        Resolution::Translated(Translated::ToService { .. })
    ));
}

#[test]
fn answers_expire_so_a_reused_tuple_finds_its_new_backend() {
    let mut t = translator([(client_to_vip(), Ok(dnat_entry()))], 16);
    t.resolve(&client_to_vip(), true, false, NO_PODS, T0);
    let other_backend = Entry {
        original: client_to_vip(),
        reply: tcp(CLIENT, 9090, CLIENT, 40000),
    };
    t.query.entries.insert(client_to_vip(), Ok(other_backend));
    assert_eq!(
        translated(t.resolve(&client_to_vip(), true, false, NO_PODS, T0 + 5 * SECOND)),
        Some(Translated::ToService {
            service: VIP,
            backend: (BACKEND, 8080),
            source_xlated: Some(GATEWAY),
        })
    );
    assert_eq!(
        translated(t.resolve(&client_to_vip(), true, false, NO_PODS, T0 + 11 * SECOND)),
        Some(Translated::ToService {
            service: VIP,
            backend: (CLIENT, 9090),
            source_xlated: None,
        })
    );
    // The old connection's backend-side alias has expired too; conntrack no longer
    // has it either.
    assert_eq!(
        t.resolve(
            &tcp(GATEWAY, 41000, BACKEND, 8080),
            false,
            false,
            POD_DESTINATION,
            T0 + 21 * SECOND
        ),
        Resolution::Plain
    );
}

#[test]
fn kernel_errors_leave_the_flow_as_observed() {
    let mut t = translator([(client_to_vip(), Err(libc::EPERM))], 16);
    assert_eq!(translated(t.resolve(&client_to_vip(), true, false, NO_PODS, T0)), None);
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
        assert!(translated(t.resolve(original, true, false, NO_PODS, T0)).is_some());
        assert!(t.connections.len() <= 4, "{}", t.connections.len());
        assert!(t.aliases.len() <= 8, "{}", t.aliases.len());
    }
    // Forgotten connections are asked again, and still answer correctly.
    let asked = t.query.asked;
    assert!(translated(t.resolve(&originals[0], true, false, NO_PODS, T0)).is_some());
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

#[test]
fn source_xlated_is_set_in_the_message_the_record_renders() {
    use sightline_proto::flow::Flow;
    let mut record = FlowRecord::new(Flow::default());
    record.addresses = Some((CLIENT, BACKEND));
    set_source_xlated(&mut record, GATEWAY);
    let ip = record.to_flow().ip.expect("ip");
    assert_eq!(
        (ip.source.as_str(), ip.source_xlated.as_str(), ip.destination.as_str()),
        ("10.0.0.2", "10.0.0.1", "10.0.0.3")
    );
    assert_eq!(ip.ip_version, sightline_proto::flow::IpVersion::IPv4 as i32);
}
