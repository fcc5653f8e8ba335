//! What flows and agent events look like once the index knows the cluster.
#![allow(clippy::unwrap_used)]

mod enrich_support;

use enrich_support::*;
use sightline_agent::enrich::{Change, Enricher, Kind};
use sightline_agent::event::{Event, EventSink};
use sightline_agent::flow_record::FlowRecord;
use sightline_proto::flow::{
    AgentEventType, Dns, Endpoint, Flow, L7FlowType, Layer7, Service, Workload, agent_event::Notification, layer7,
};

const SHOP: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  labels: {team: blue}\n---\n";
const WEB_OWNERS: &str = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-7d4b9\n  namespace: shop\n  ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d1, controller: true}]\nspec:\n  selector: {matchLabels: {app: web}}\n---\n";
const WEB_LABELS: &str = "  labels: {app: web, pod-template-hash: 7d4b9}\n  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-7d4b9, uid: rs1, controller: true}]\n";

fn enrich(enricher: &mut Enricher<Collect>, sink: &Collect, flow: Flow) -> Flow {
    sink.take();
    enricher.publish(Event::flow(flow));
    sink.flows().pop().expect("flow forwarded")
}

/// The source endpoint of a flow from `ip` to the internet at `time`.
fn source_at(enricher: &mut Enricher<Collect>, sink: &Collect, ip: &str, time: i128) -> Endpoint {
    enrich(enricher, sink, flow(ip, "8.8.8.8", time))
        .source
        .map(|e| *e)
        .expect("source endpoint")
}

fn shop_cluster() -> (
    std::sync::Arc<sightline_agent::enrich::Index>,
    Enricher<Collect>,
    Collect,
) {
    let index = index("node-a");
    upsert(&index, SHOP);
    upsert(&index, WEB_OWNERS);
    upsert(&index, &node("node-a", "192.168.0.1"));
    upsert(&index, &node("node-b", "192.168.0.2"));
    upsert(
        &index,
        &pod(
            "shop",
            "web-7d4b9-aaaaa",
            "u-web1",
            &["10.0.1.5", "fd00::5"],
            "node-a",
            "2026-01-01T00:00:00Z",
            WEB_LABELS,
        ),
    );
    upsert(
        &index,
        &pod(
            "shop",
            "web-7d4b9-bbbbb",
            "u-web2",
            &["10.0.2.5"],
            "node-b",
            "2026-01-01T00:00:00Z",
            WEB_LABELS,
        ),
    );
    upsert(
        &index,
        &pod(
            "shop",
            "db-0",
            "u-db",
            &["10.0.1.9"],
            "node-a",
            "2026-01-01T00:00:00Z",
            "  labels: {app: db, statefulset.kubernetes.io/pod-name: db-0}\n  ownerReferences: [{apiVersion: apps/v1, kind: StatefulSet, name: db, uid: s1, controller: true}]\n",
        ),
    );
    upsert(&index, &service("shop", "web", "10.96.0.10"));
    let sink = Collect::default();
    let enricher = Enricher::new(index.clone(), sink.clone());
    (index, enricher, sink)
}

#[test]
fn pod_to_service_flow_carries_pod_workload_labels_identity_and_service() {
    let (_index, mut enricher, sink) = shop_cluster();
    let out = enrich(&mut enricher, &sink, flow("10.0.1.5", "10.96.0.10", 100));
    let source = out.source.unwrap();
    assert_eq!(source.namespace, "shop");
    assert_eq!(source.pod_name, "web-7d4b9-aaaaa");
    assert_eq!(source.cluster_name, "default");
    assert_eq!(
        source.workloads,
        vec![Workload {
            name: "web".into(),
            kind: "Deployment".into()
        }]
    );
    assert_eq!(
        source.labels,
        vec![
            "k8s:app=web",
            "k8s:io.cilium.k8s.namespace.labels.team=blue",
            "k8s:io.cilium.k8s.policy.cluster=default",
            "k8s:io.cilium.k8s.policy.serviceaccount=default",
            "k8s:io.kubernetes.pod.namespace=shop",
        ]
    );
    assert!(
        source.identity >= 256 && source.identity < 1 << 24,
        "{}",
        source.identity
    );
    assert_eq!(
        out.destination_service,
        Some(Box::new(Service {
            name: "web".into(),
            namespace: "shop".into()
        }))
    );
    assert_eq!(out.source_service, None);
    // A VIP is no endpoint: the destination is outside every known endpoint.
    assert_eq!(out.destination.unwrap().labels, vec!["reserved:world"]);
}

#[test]
fn replicas_share_an_identity_across_nodes_and_ipv6_addresses_resolve() {
    let (_index, mut enricher, sink) = shop_cluster();
    let out = enrich(&mut enricher, &sink, flow("fd00::5", "10.0.2.5", 100));
    let (source, destination) = (out.source.unwrap(), out.destination.unwrap());
    assert_eq!(source.pod_name, "web-7d4b9-aaaaa");
    assert_eq!(destination.pod_name, "web-7d4b9-bbbbb");
    assert_eq!(source.identity, destination.identity);
    let db = enrich(&mut enricher, &sink, flow("10.0.1.9", "10.0.1.5", 100))
        .source
        .unwrap();
    assert_ne!(db.identity, source.identity);
    assert_eq!(
        db.workloads,
        vec![Workload {
            name: "db".into(),
            kind: "StatefulSet".into()
        }]
    );
    assert!(!db.labels.iter().any(|l| l.contains("pod-name")), "{:?}", db.labels);
}

#[test]
fn nodes_world_and_api_server_get_reserved_identities() {
    let (index, mut enricher, sink) = shop_cluster();
    upsert(
        &index,
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: kubernetes\n  namespace: default\n  labels: {kubernetes.io/service-name: kubernetes}\naddressType: IPv4\nendpoints: [{addresses: [\"172.18.0.2\"]}]\n",
    );
    let check = |enricher: &mut Enricher<Collect>, ip: &str| {
        let e: Endpoint = enrich(enricher, &sink, flow(ip, "10.0.1.5", 100))
            .source
            .map(|e| *e)
            .unwrap();
        (e.identity, e.labels)
    };
    assert_eq!(
        check(&mut enricher, "192.168.0.1"),
        (1, vec!["reserved:host".to_string()])
    );
    assert_eq!(
        check(&mut enricher, "192.168.0.2"),
        (6, vec!["reserved:remote-node".to_string()])
    );
    assert_eq!(check(&mut enricher, "8.8.8.8"), (2, vec!["reserved:world".to_string()]));
    assert_eq!(
        check(&mut enricher, "172.18.0.2"),
        (7, vec!["reserved:kube-apiserver".to_string()])
    );
}

#[test]
fn host_network_pods_are_shown_as_their_node() {
    let (index, mut enricher, sink) = shop_cluster();
    let extra = "  labels: {app: agent}\n";
    let yaml = pod(
        "kube-system",
        "agent-x",
        "u-agent",
        &["192.168.0.2"],
        "node-b",
        "2026-01-01T00:00:00Z",
        extra,
    )
    .replace("spec:\n", "spec:\n  hostNetwork: true\n");
    upsert(&index, &yaml);
    let source = enrich(&mut enricher, &sink, flow("192.168.0.2", "10.0.1.5", 100))
        .source
        .unwrap();
    assert_eq!((source.identity, source.pod_name.as_str()), (6, ""));
}

#[test]
fn a_new_pod_that_takes_a_dead_pods_ip_is_shown_never_the_old_one() {
    let (index, mut enricher, sink) = shop_cluster();
    let ip = "10.0.1.77";
    upsert(
        &index,
        &pod("shop", "old", "u-old", &[ip], "node-a", "2026-01-01T00:00:00Z", ""),
    );
    assert_eq!(source_at(&mut enricher, &sink, ip, 1).pod_name, "old");
    // The new pod's add arrives before the old pod's delete.
    upsert(
        &index,
        &pod("shop", "new", "u-new", &[ip], "node-a", "2026-01-02T00:00:00Z", ""),
    );
    assert_eq!(source_at(&mut enricher, &sink, ip, 2).pod_name, "new");
    // A late update of the old pod (terminating) must not take the IP back.
    let old = pod("shop", "old", "u-old", &[ip], "node-a", "2026-01-01T00:00:00Z", "")
        .replace("phase: Running", "phase: Failed");
    upsert(&index, &old);
    assert_eq!(source_at(&mut enricher, &sink, ip, 3).pod_name, "new");
    index.apply(Change::Delete(Kind::Pod, "shop/old".into()));
    assert_eq!(source_at(&mut enricher, &sink, ip, 4).pod_name, "new");
    index.apply(Change::Delete(Kind::Pod, "shop/new".into()));
    assert_eq!(source_at(&mut enricher, &sink, ip, 5).labels, vec!["reserved:world"]);
}

#[test]
fn a_relist_drops_what_was_deleted_meanwhile_and_a_service_can_move() {
    let (index, mut enricher, sink) = shop_cluster();
    let keep = objects(&pod(
        "shop",
        "web-7d4b9-bbbbb",
        "u-web2",
        &["10.0.2.5"],
        "node-b",
        "2026-01-01T00:00:00Z",
        WEB_LABELS,
    ));
    index.apply(Change::Replace(Kind::Pod, keep));
    let flow1 = enrich(&mut enricher, &sink, flow("10.0.1.5", "10.0.2.5", 100));
    assert_eq!(flow1.source.unwrap().labels, vec!["reserved:world"]);
    assert_eq!(flow1.destination.unwrap().pod_name, "web-7d4b9-bbbbb");

    upsert(&index, &service("shop", "web", "10.96.0.99"));
    let old_vip = enrich(&mut enricher, &sink, flow("10.0.2.5", "10.96.0.10", 100));
    assert_eq!(old_vip.destination_service, None);
    let new_vip = enrich(&mut enricher, &sink, flow("10.0.2.5", "10.96.0.99", 100));
    assert_eq!(new_vip.destination_service.unwrap().name, "web");
}

fn dns_response(query: &str, ips: &[&str], ttl: u32, at: i128) -> Flow {
    let mut flow = flow("10.0.1.53", "10.0.1.5", at);
    flow.l7 = Some(Box::new(Layer7 {
        r#type: L7FlowType::Response as i32,
        record: Some(layer7::Record::Dns(Dns {
            query: query.into(),
            ips: ips.iter().map(|s| s.to_string()).collect(),
            ttl,
            ..Dns::default()
        })),
        ..Layer7::default()
    }));
    flow
}

#[test]
fn dns_answers_name_later_flows_until_their_ttl_runs_out() {
    let (_index, mut enricher, sink) = shop_cluster();
    enrich(
        &mut enricher,
        &sink,
        dns_response("api.example.com.", &["203.0.113.7"], 30, 1000),
    );
    let out = enrich(&mut enricher, &sink, flow("10.0.1.5", "203.0.113.7", 1020));
    assert_eq!(out.destination_names, vec!["api.example.com"]);
    assert!(out.source_names.is_empty());
    let back = enrich(&mut enricher, &sink, flow("203.0.113.7", "10.0.1.5", 1020));
    assert_eq!(back.source_names, vec!["api.example.com"]);
    let late = enrich(&mut enricher, &sink, flow("10.0.1.5", "203.0.113.7", 1031));
    assert!(late.destination_names.is_empty(), "{:?}", late.destination_names);
}

fn agent_events(sink: &Collect) -> Vec<(i32, Option<Notification>)> {
    sink.take()
        .into_iter()
        .filter_map(|e| match e {
            Event::Agent { event, .. } => Some((event.r#type, event.notification)),
            _ => None,
        })
        .collect()
}

#[test]
#[allow(deprecated)]
fn changes_become_agent_events_before_the_next_flow() {
    let index = index("node-a");
    let sink = Collect::default();
    let mut enricher = Enricher::new(index.clone(), sink.clone());
    upsert(&index, &node("node-a", "192.168.0.1"));
    upsert(
        &index,
        &pod(
            "shop",
            "local",
            "u-l",
            &["10.0.1.5"],
            "node-a",
            "2026-01-01T00:00:00Z",
            "",
        ),
    );
    upsert(
        &index,
        &pod(
            "shop",
            "remote",
            "u-r",
            &["10.0.2.5"],
            "node-b",
            "2026-01-01T00:00:00Z",
            "",
        ),
    );
    upsert(&index, &service("shop", "web", "10.96.0.10"));
    upsert(
        &index,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop, uid: p1}\nspec:\n  podSelector: {}\n  ingress: [{}]\n",
    );
    index.apply(Change::Delete(Kind::NetworkPolicy, "shop/deny".into()));
    index.apply(Change::Delete(Kind::Pod, "shop/local".into()));
    enricher.flush_agent_events();
    let events = agent_events(&sink);
    let types: Vec<i32> = events.iter().map(|(t, _)| *t).collect();
    use AgentEventType as T;
    let count = |t: T| types.iter().filter(|x| **x == t as i32).count();
    assert_eq!(
        count(T::EndpointCreated),
        1,
        "only the local pod is an endpoint: {types:?}"
    );
    assert_eq!(count(T::EndpointDeleted), 1);
    assert_eq!(count(T::ServiceUpserted), 1);
    assert_eq!(count(T::PolicyUpdated), 1);
    assert_eq!(count(T::PolicyDeleted), 1);
    assert_eq!(count(T::IpcacheDeleted), 1);
    let created = events.iter().find_map(|(t, n)| match n {
        Some(Notification::EndpointUpdate(u)) if *t == T::EndpointCreated as i32 => Some(u.clone()),
        _ => None,
    });
    let created = created.unwrap();
    assert_eq!(
        (created.namespace.as_str(), created.pod_name.as_str()),
        ("shop", "local")
    );
    assert!(
        created
            .labels
            .contains(&"k8s:io.kubernetes.pod.namespace=shop".to_string())
    );
    let ipcache = events.iter().find_map(|(_, n)| match n {
        Some(Notification::IpcacheUpdate(u)) if u.pod_name == "local" => Some(u.clone()),
        _ => None,
    });
    let ipcache = ipcache.unwrap();
    assert_eq!(ipcache.cidr, "10.0.1.5/32");
    assert_eq!(ipcache.host_ip, "192.168.0.1");
    assert!(ipcache.identity >= 256);
    let policy = events.iter().find_map(|(_, n)| match n {
        Some(Notification::PolicyUpdate(p)) => Some(p.clone()),
        _ => None,
    });
    let policy = policy.unwrap();
    assert_eq!((policy.revision, policy.rule_count), (1, 1));
    assert!(
        policy
            .labels
            .contains(&"k8s:io.cilium.k8s.policy.name=deny".to_string())
    );

    // A label change moves the pod to another identity: the IP cache says so.
    upsert(
        &index,
        &pod(
            "shop",
            "remote",
            "u-r",
            &["10.0.2.5"],
            "node-b",
            "2026-01-01T00:00:00Z",
            "  labels: {app: x}\n",
        ),
    );
    enricher.publish(Event::flow(flow("10.0.2.5", "10.0.1.5", 1)));
    let events = agent_events(&sink);
    match &events[..] {
        [(t, Some(Notification::IpcacheUpdate(u)))] => {
            assert_eq!(*t, T::IpcacheUpserted as i32);
            assert!(u.old_identity.is_some() && u.old_identity != Some(u.identity.into()));
        }
        other => panic!("expected one IP cache upsert, got {other:?}"),
    }
}

#[test]
fn node_peers_follow_node_objects() {
    let index = index("node-a");
    let mut peers = index.peers();
    upsert(&index, &node("node-a", "192.168.0.1"));
    upsert(&index, &node("node-b", "192.168.0.2"));
    assert!(peers.has_changed().unwrap());
    let list: Vec<(String, String)> = peers
        .borrow_and_update()
        .iter()
        .map(|p| (p.name.clone(), p.address.to_string()))
        .collect();
    assert_eq!(
        list,
        vec![
            ("node-a".into(), "192.168.0.1:4244".into()),
            ("node-b".into(), "192.168.0.2:4244".into())
        ]
    );
    index.apply(Change::Delete(Kind::Node, "node-b".into()));
    assert!(peers.has_changed().unwrap());
    assert_eq!(peers.borrow_and_update().len(), 1);
}

#[test]
fn outside_the_default_cluster_node_names_carry_the_cluster() {
    let index = std::sync::Arc::new(sightline_agent::enrich::Index::new(
        sightline_agent::enrich::IndexConfig {
            cluster: "east".into(),
            local_node: "node-a".into(),
            agent_port: 4244,
        },
    ));
    upsert(
        &index,
        &pod("shop", "p", "u", &["10.0.1.5"], "node-a", "2026-01-01T00:00:00Z", ""),
    );
    let sink = Collect::default();
    let mut enricher = Enricher::new(index.clone(), sink.clone());
    let out = enrich(&mut enricher, &sink, flow("10.0.1.5", "8.8.8.8", 1));
    assert_eq!(out.node_name, "east/node-a");
    assert_eq!(out.source.unwrap().cluster_name, "east");
    let mut peers = index.peers();
    upsert(&index, &node("node-a", "192.168.0.1"));
    assert_eq!(peers.borrow_and_update()[0].name, "east/node-a");
}

/// Hubble UI always sends this blacklist (it is meant to hide in-cluster DNS
/// chatter); a flow that carries a cluster-domain name never reaches its table.
fn hubble_ui_blacklist() -> sightline_agent::observer::filter::FilterSet {
    let fqdn = vec!["*.cluster.local*".to_owned()];
    let blacklist = [
        sightline_proto::flow::FlowFilter {
            source_fqdn: fqdn.clone(),
            ..Default::default()
        },
        sightline_proto::flow::FlowFilter {
            destination_fqdn: fqdn,
            ..Default::default()
        },
    ];
    sightline_agent::observer::filter::FilterSet::compile(&[], &blacklist).expect("the UI's filters compile")
}

#[test]
fn cluster_domain_names_stay_off_flows_so_hubble_ui_shows_pod_to_pod_drops() {
    let ui = hubble_ui_blacklist();
    let drop_to_db = || {
        let mut dropped = flow("10.0.1.5", "10.0.1.9", 1001);
        dropped.verdict = sightline_proto::flow::Verdict::Dropped as i32;
        dropped
    };
    let learn_both = |enricher: &mut Enricher<Collect>, sink: &Collect| {
        let db = dns_response("db-0.db.shop.svc.cluster.local.", &["10.0.1.9"], 30, 1000);
        enrich(enricher, sink, db);
        let outside = dns_response("api.example.com.", &["203.0.113.7"], 30, 1000);
        enrich(enricher, sink, outside);
    };

    let (_index, enricher, sink) = shop_cluster();
    let mut enricher = enricher.with_cluster_domain("cluster.local");
    learn_both(&mut enricher, &sink);
    let dropped = enrich(&mut enricher, &sink, drop_to_db());
    assert!(dropped.destination_names.is_empty(), "{:?}", dropped.destination_names);
    assert!(ui.matches_flow(&FlowRecord::new(dropped)), "the UI keeps the drop");
    let to_world = enrich(&mut enricher, &sink, flow("10.0.1.5", "203.0.113.7", 1001));
    assert_eq!(
        to_world.destination_names,
        vec!["api.example.com"],
        "outside names stay"
    );
    assert!(ui.matches_flow(&FlowRecord::new(to_world)));

    // What the setting prevents: the same drop named in-cluster is hidden by the UI.
    let (_index, mut unfiltered, sink) = shop_cluster();
    learn_both(&mut unfiltered, &sink);
    let hidden = enrich(&mut unfiltered, &sink, drop_to_db());
    assert_eq!(hidden.destination_names, vec!["db-0.db.shop.svc.cluster.local"]);
    assert!(!ui.matches_flow(&FlowRecord::new(hidden)));
}

#[test]
fn addresses_on_the_nodes_own_interfaces_are_the_host_and_follow_changes() {
    let (index, mut enricher, sink) = shop_cluster();
    let source_of = |enricher: &mut Enricher<Collect>, ip: &str| {
        let e: Endpoint = enrich(enricher, &sink, flow(ip, "10.0.1.5", 100))
            .source
            .map(|e| *e)
            .expect("source endpoint");
        (e.identity, e.labels)
    };
    let host = (1, vec!["reserved:host".to_string()]);
    // A CNI bridge gateway: on this node's interfaces, in no Node object.
    assert_eq!(
        source_of(&mut enricher, "10.0.1.1").0,
        2,
        "world before netlink says otherwise"
    );
    let gateway: std::net::IpAddr = "10.0.1.1".parse().expect("ip");
    let v6: std::net::IpAddr = "fd00::1".parse().expect("ip");
    index.set_host_addresses([gateway, v6]);
    assert_eq!(source_of(&mut enricher, "10.0.1.1"), host);
    assert_eq!(source_of(&mut enricher, "fd00::1"), host);
    // A pod keeps its own identity even if the node also has its address.
    index.set_host_addresses([gateway, v6, "10.0.1.5".parse().expect("ip")]);
    assert_eq!(
        enrich(&mut enricher, &sink, flow("10.0.1.5", "10.0.1.9", 100))
            .source
            .map(|e| e.pod_name),
        Some("web-7d4b9-aaaaa".to_string())
    );
    index.set_host_addresses([v6]);
    assert_eq!(
        source_of(&mut enricher, "10.0.1.1").0,
        2,
        "world again once the address is gone"
    );
    // The Node object's own address stays the host whatever netlink says.
    assert_eq!(source_of(&mut enricher, "192.168.0.1"), host);
}

#[test]
fn a_deleted_pod_is_reported_as_departed_once_per_address() {
    use sightline_agent::enrich::index::PodDeparture;
    let index = index("node-1");
    let (send, receive) = std::sync::mpsc::channel();
    index.notify_departures(send);
    let web = pod(
        "shop",
        "web-1",
        "u1",
        &["10.0.0.5"],
        "node-1",
        "2024-01-01T00:00:00Z",
        "",
    );
    upsert(&index, &web);
    assert!(receive.try_recv().is_err(), "a new pod has not departed");
    for object in objects(&web) {
        index.apply(Change::Delete(object.kind(), object.key()));
    }
    assert_eq!(
        receive.try_iter().collect::<Vec<_>>(),
        [PodDeparture {
            namespace: "shop".into(),
            name: "web-1".into(),
            ip: "10.0.0.5".parse().unwrap(),
        }]
    );
}

/// Conntrack whose entry for a connection appears only after the first question,
/// as when the client's first packet reaches userspace before netfilter confirms it.
struct ConfirmedLate {
    entry: sightline_agent::datapath::ctnetlink::Entry,
    asked: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl sightline_agent::datapath::ctnetlink::ConntrackQuery for ConfirmedLate {
    fn get(
        &mut self,
        tuple: &sightline_agent::datapath::ctnetlink::Tuple,
        named: sightline_agent::datapath::ctnetlink::Named,
    ) -> Result<Option<sightline_agent::datapath::ctnetlink::Entry>, sightline_agent::datapath::ctnetlink::CtnetlinkError>
    {
        let asked = self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let known = match named {
            sightline_agent::datapath::ctnetlink::Named::Original => *tuple == self.entry.original,
            sightline_agent::datapath::ctnetlink::Named::Reply => *tuple == self.entry.reply,
        };
        Ok((asked > 0 && known).then_some(self.entry))
    }
}

fn tcp_flow(src: &str, source_port: u32, dst: &str, destination_port: u32, time: i128) -> Flow {
    Flow {
        l4: Some(sightline_proto::flow::Layer4 {
            protocol: Some(sightline_proto::flow::layer4::Protocol::Tcp(
                sightline_proto::flow::Tcp {
                    source_port,
                    destination_port,
                    flags: None,
                },
            )),
        }),
        ..flow(src, dst, time)
    }
}

#[test]
fn a_service_flow_conntrack_confirms_late_is_held_asked_again_and_keeps_its_place() {
    use sightline_agent::datapath::ctnetlink::{Entry, Tuple};
    let (_index, enricher, sink) = shop_cluster();
    let ip = |text: &str| text.parse().unwrap();
    let original = Tuple {
        protocol: 6,
        source: ip("10.0.1.9"),
        source_port: 40000,
        destination: ip("10.96.0.10"),
        destination_port: 80,
    };
    let asked = std::sync::Arc::default();
    let mut enricher = enricher.with_conntrack(Box::new(ConfirmedLate {
        entry: Entry {
            original,
            reply: Tuple {
                protocol: 6,
                source: ip("10.0.1.5"),
                source_port: 8080,
                destination: ip("10.0.1.9"),
                destination_port: 40000,
            },
        },
        asked: std::sync::Arc::clone(&asked),
    }));
    enricher.publish(Event::flow(tcp_flow("10.0.1.9", 40000, "10.96.0.10", 80, 100)));
    enricher.publish(Event::flow(flow("10.0.1.9", "8.8.8.8", 101)));
    // Producers call `idle` on a timer and before they stop: nothing stays held.
    enricher.idle();
    let flows = sink.flows();
    assert_eq!(flows.len(), 2, "{flows:?}");
    let to_service = &flows[0];
    let ip_of = |flow: &Flow| flow.ip.clone().unwrap();
    assert_eq!(ip_of(to_service).destination, "10.0.1.5", "{to_service:?}");
    assert_eq!(
        to_service.destination.as_ref().map(|e| e.pod_name.as_str()),
        Some("web-7d4b9-aaaaa")
    );
    assert_eq!(
        to_service.destination_service.as_ref().map(|s| s.name.as_str()),
        Some("web")
    );
    assert_eq!(ip_of(&flows[1]).destination, "8.8.8.8", "order of arrival kept");
    assert_eq!(asked.load(std::sync::atomic::Ordering::Relaxed), 2, "asked again once");
}
