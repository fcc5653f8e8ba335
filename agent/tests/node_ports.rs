//! Services reached through a NodePort on a node address, and through a
//! load-balancer ingress IP: the flows name the Service, and the backend where this
//! node's conntrack translated the connection.
#![allow(clippy::unwrap_used)]

mod enrich_support;

use std::net::IpAddr;

use enrich_support::*;
use sightline_agent::datapath::ctnetlink::{ConntrackQuery, CtnetlinkError, Entry, Named, Tuple};
use sightline_agent::enrich::{Enricher, Index};
use sightline_agent::flow_record::FlowRecord;
use sightline_proto::flow::{Flow, Layer4, Tcp, Udp, layer4};

const NODE_A: &str = "192.168.0.1";
const NODE_B: &str = "192.168.0.2";
const CLIENT: &str = "10.0.1.9";
const WEB: &str = "10.0.2.5";
const LB_IP: &str = "172.20.0.50";
const IDENTITY_REMOTE_NODE: u32 = 6;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn tuple(protocol: u8, (source, source_port): (&str, u16), (destination, destination_port): (&str, u16)) -> Tuple {
    Tuple {
        protocol,
        source: ip(source),
        source_port,
        destination: ip(destination),
        destination_port,
    }
}

/// Conntrack as a fixed list of entries, found by either tuple.
struct Table(Vec<Entry>);

impl ConntrackQuery for Table {
    fn get(&mut self, tuple: &Tuple, named: Named) -> Result<Option<Entry>, CtnetlinkError> {
        Ok(self
            .0
            .iter()
            .find(|entry| match named {
                Named::Original => entry.original == *tuple,
                Named::Reply => entry.reply == *tuple,
            })
            .copied())
    }
}

/// `shop/web`: a ClusterIP, NodePort 30080/TCP for port 80, and a load-balancer IP.
fn web_service(node_port: Option<u16>) -> String {
    let (kind, node_port) = match node_port {
        Some(port) => ("LoadBalancer", format!(", nodePort: {port}")),
        None => ("ClusterIP", String::new()),
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop, uid: svc-web}}\n\
         spec:\n  type: {kind}\n  clusterIP: \"10.96.0.10\"\n  clusterIPs: [\"10.96.0.10\"]\n  \
         ports: [{{port: 80, targetPort: 8080, protocol: TCP{node_port}}}]\n\
         status: {{loadBalancer: {{ingress: [{{ip: \"{LB_IP}\"}}]}}}}\n---\n"
    )
}

/// Two nodes, a client pod on node-a and the web backend on node-b, seen by the
/// agent of `local_node` with `conntrack` as its kernel's table.
fn cluster(local_node: &str, conntrack: Vec<Entry>) -> (std::sync::Arc<Index>, Enricher<Collect>) {
    let index = index(local_node);
    upsert(&index, "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n");
    upsert(&index, &node("node-a", NODE_A));
    upsert(&index, &node("node-b", NODE_B));
    let created = "2026-01-01T00:00:00Z";
    upsert(&index, &pod("shop", "client", "u-c", &[CLIENT], "node-a", created, ""));
    upsert(&index, &pod("shop", "web-0", "u-w", &[WEB], "node-b", created, ""));
    upsert(&index, &web_service(Some(30080)));
    let enricher = Enricher::new(index.clone(), Collect::default()).with_conntrack(Box::new(Table(conntrack)));
    (index, enricher)
}

fn l4(protocol: layer4::Protocol) -> Option<Layer4> {
    Some(Layer4 {
        protocol: Some(protocol),
    })
}

fn tcp((source, source_port): (&str, u16), (destination, destination_port): (&str, u16)) -> FlowRecord {
    FlowRecord::new(Flow {
        l4: l4(layer4::Protocol::Tcp(Tcp {
            source_port: source_port.into(),
            destination_port: destination_port.into(),
            flags: None,
        })),
        ..flow(source, destination, 100)
    })
}

fn enriched(enricher: &mut Enricher<Collect>, mut record: FlowRecord) -> Flow {
    enricher.enrich(&mut record);
    record.to_flow()
}

fn addresses(flow: &Flow) -> (String, String) {
    let ip = flow.ip.as_ref().unwrap();
    (ip.source.clone(), ip.destination.clone())
}

fn tcp_ports(flow: &Flow) -> (u32, u32) {
    match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(tcp)) => (tcp.source_port, tcp.destination_port),
        other => panic!("not TCP: {other:?}"),
    }
}

fn pod_of(endpoint: Option<&sightline_proto::flow::Endpoint>) -> &str {
    endpoint.map_or("", |e| e.pod_name.as_str())
}

fn service_of(service: Option<&sightline_proto::flow::Service>) -> Option<(&str, &str)> {
    service.map(|s| (s.namespace.as_str(), s.name.as_str()))
}

const WEB_SERVICE: Option<(&str, &str)> = Some(("shop", "web"));

#[test]
fn a_pod_reaching_a_node_port_of_its_node_sees_the_backend_and_the_service_both_ways() {
    // kube-proxy on node-a DNATs node-a:30080 to the backend on node-b.
    let (_index, mut enricher) = cluster(
        "node-a",
        vec![Entry {
            original: tuple(6, (CLIENT, 40000), (NODE_A, 30080)),
            reply: tuple(6, (WEB, 8080), (CLIENT, 40000)),
        }],
    );
    let request = enriched(&mut enricher, tcp((CLIENT, 40000), (NODE_A, 30080)));
    assert_eq!(addresses(&request), (CLIENT.into(), WEB.into()), "{request:?}");
    assert_eq!(tcp_ports(&request), (40000, 8080));
    assert_eq!(pod_of(request.destination.as_deref()), "web-0");
    assert_eq!(service_of(request.destination_service.as_deref()), WEB_SERVICE);
    assert_eq!(service_of(request.source_service.as_deref()), None);

    let reply = enriched(&mut enricher, tcp((NODE_A, 30080), (CLIENT, 40000)));
    assert_eq!(addresses(&reply), (WEB.into(), CLIENT.into()), "{reply:?}");
    assert_eq!(tcp_ports(&reply), (8080, 40000));
    assert_eq!(pod_of(reply.source.as_deref()), "web-0");
    assert_eq!(service_of(reply.source_service.as_deref()), WEB_SERVICE);
    assert_eq!(service_of(reply.destination_service.as_deref()), None);
}

#[test]
fn another_nodes_address_on_a_node_port_names_the_service_while_that_node_translates() {
    // node-a's conntrack has the connection untranslated: node-b DNATs it.
    let original = tuple(6, (CLIENT, 40001), (NODE_B, 30080));
    let (_index, mut enricher) = cluster(
        "node-a",
        vec![Entry {
            original,
            reply: original.reversed(),
        }],
    );
    let request = enriched(&mut enricher, tcp((CLIENT, 40001), (NODE_B, 30080)));
    assert_eq!(addresses(&request), (CLIENT.into(), NODE_B.into()), "{request:?}");
    assert_eq!(
        request.destination.as_ref().map(|e| e.identity),
        Some(IDENTITY_REMOTE_NODE)
    );
    assert_eq!(service_of(request.destination_service.as_deref()), WEB_SERVICE);
}

#[test]
fn only_a_node_address_with_the_node_ports_protocol_and_number_names_the_service() {
    let (_index, mut enricher) = cluster("node-a", Vec::new());
    for (destination, port) in [("8.8.8.8", 30080), (WEB, 30080), (NODE_A, 30081), (NODE_A, 80)] {
        let flow = enriched(&mut enricher, tcp((CLIENT, 40002), (destination, port)));
        assert_eq!(
            service_of(flow.destination_service.as_deref()),
            None,
            "{destination}:{port}"
        );
    }
    let udp = FlowRecord::new(Flow {
        l4: l4(layer4::Protocol::Udp(Udp {
            source_port: 40003,
            destination_port: 30080,
        })),
        ..flow(CLIENT, NODE_A, 100)
    });
    let udp = enriched(&mut enricher, udp);
    assert_eq!(service_of(udp.destination_service.as_deref()), None, "{udp:?}");
}

#[test]
fn a_remote_client_through_a_node_port_is_named_at_the_backend_with_the_service() {
    // A host outside the cluster reaches node-b:30080; node-b DNATs to its own pod
    // and masquerades the client to its bridge gateway.
    let remote = "203.0.113.7";
    let gateway = "10.0.2.1";
    let (_index, mut enricher) = cluster(
        "node-b",
        vec![Entry {
            original: tuple(6, (remote, 50000), (NODE_B, 30080)),
            reply: tuple(6, (WEB, 8080), (gateway, 42000)),
        }],
    );
    let request = enriched(&mut enricher, tcp((gateway, 42000), (WEB, 8080)));
    assert_eq!(addresses(&request), (remote.into(), WEB.into()), "{request:?}");
    assert_eq!(request.ip.as_ref().unwrap().source_xlated, gateway);
    assert_eq!(tcp_ports(&request), (50000, 8080));
    assert_eq!(service_of(request.destination_service.as_deref()), WEB_SERVICE);
    assert_eq!(pod_of(request.destination.as_deref()), "web-0");

    let reply = enriched(&mut enricher, tcp((WEB, 8080), (gateway, 42000)));
    assert_eq!(addresses(&reply), (WEB.into(), remote.into()), "{reply:?}");
    assert_eq!(service_of(reply.source_service.as_deref()), WEB_SERVICE);
}

#[test]
fn a_load_balancer_ingress_ip_names_the_service_and_its_backend() {
    let (_index, mut enricher) = cluster(
        "node-a",
        vec![Entry {
            original: tuple(6, (CLIENT, 40004), (LB_IP, 80)),
            reply: tuple(6, (WEB, 8080), (CLIENT, 40004)),
        }],
    );
    let request = enriched(&mut enricher, tcp((CLIENT, 40004), (LB_IP, 80)));
    assert_eq!(addresses(&request), (CLIENT.into(), WEB.into()), "{request:?}");
    assert_eq!(pod_of(request.destination.as_deref()), "web-0");
    assert_eq!(service_of(request.destination_service.as_deref()), WEB_SERVICE);
}

#[test]
fn a_node_port_dropped_from_the_service_or_a_deleted_service_names_nothing() {
    let (index, mut enricher) = cluster("node-a", Vec::new());
    let to_node_port = |enricher: &mut Enricher<Collect>, port: u16| {
        let flow = enriched(enricher, tcp((CLIENT, port), (NODE_A, 30080)));
        service_of(flow.destination_service.as_deref()).map(|(ns, name)| format!("{ns}/{name}"))
    };
    assert_eq!(to_node_port(&mut enricher, 40010).as_deref(), Some("shop/web"));
    upsert(&index, &web_service(None));
    assert_eq!(to_node_port(&mut enricher, 40011), None);
    upsert(&index, &web_service(Some(30080)));
    assert_eq!(to_node_port(&mut enricher, 40012).as_deref(), Some("shop/web"));
    index.apply(sightline_agent::enrich::Change::Delete(
        sightline_agent::enrich::Kind::Service,
        "shop/web".into(),
    ));
    assert_eq!(to_node_port(&mut enricher, 40013), None);
}
