//! Traffic through a Service address translated by a kube-proxy-style nftables DNAT
//! (with masquerade) in the node's namespace: every flow of the connection, at the
//! client's and at the backend's veth, in both directions, names the backend pod and
//! carries the Service, as Hubble shows it. The same for DNS through the kube-dns VIP,
//! for a NodePort on any of the node's addresses (over IPv4 and over IPv6, with a
//! dual-stack Service), and for a ClusterIP translated on the client's node to a
//! backend on another node. Run as root.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use sightline_e2e::{DnsServer, Netns, Node, Pod};
use sightline_proto::flow::{Flow, layer7};
use support::services::{
    EnrichedAgent, Family, NODE_NAME, RemoteHost, ServiceSpec, addresses, gateway, install_rules, is_tcp, link_nodes,
    node_yaml, pod_named, pod_yaml, pod_yaml_on, route_pods, route_pods_ipv6, route_through_node, service_named,
    service_yaml, source_xlated,
};
use support::{is_reply, on_interface, ports};

const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The web Service's IPv6 ClusterIP (outside the harness's pod prefix fd00::/16).
const WEB_VIP6: Ipv6Addr = Ipv6Addr::new(0xfd96, 0, 0, 0, 0, 0, 0, 0x10);
const DNS_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 53);
/// A Service external IP (TEST-NET-3) that the node routes for.
const WEB_EXTERNAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The web Service's NodePort, open on every address of the node.
const WEB_NODE_PORT: u16 = 30080;

/// What kube-proxy installs for the two Services: DNAT in prerouting (the NodePort
/// on any local address, as kube-proxy's `fib daddr type local` / `addrtype LOCAL`
/// match does), masquerade of what was DNATed (so replies return through the node
/// to be un-NATed). One table per family, as kube-proxy's nftables mode has; the
/// IPv6 one serves the web Service's IPv6 ClusterIP and its NodePort.
fn kube_proxy_rules(web: &Pod, dns: &Pod) -> String {
    format!(
        "table ip sightline-kube-proxy {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {{ {WEB_VIP}, {WEB_EXTERNAL} }} tcp dport 80 dnat to {web}:8080
    fib daddr type local tcp dport {WEB_NODE_PORT} dnat to {web}:8080
    ip daddr {DNS_VIP} udp dport 53 dnat to {dns}:53
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat masquerade
  }}
}}
table ip6 sightline-kube-proxy {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip6 daddr {WEB_VIP6} tcp dport 80 dnat to [{web6}]:8080
    fib daddr type local tcp dport {WEB_NODE_PORT} dnat to [{web6}]:8080
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat masquerade
  }}
}}
",
        web = web.ipv4,
        web6 = web.ipv6,
        dns = dns.ipv4
    )
}

fn web_service(web: &Pod) -> ServiceSpec<'_> {
    ServiceSpec {
        name: "web",
        namespace: "shop",
        cluster_ip: WEB_VIP,
        cluster_ipv6: Some(WEB_VIP6),
        external_ips: &[WEB_EXTERNAL],
        port: 80,
        target: 8080,
        protocol: "TCP",
        node_port: Some(WEB_NODE_PORT),
        backend: web,
    }
}

fn manifests(client: &Pod, web: &Pod, dns: &Pod) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: kube-system}}\n---\n{}{}{}{}{}",
        pod_yaml("client", "shop", client, "app: client"),
        pod_yaml("web-0", "shop", web, "app: web"),
        pod_yaml("coredns-0", "kube-system", dns, "k8s-app: kube-dns"),
        service_yaml(&web_service(web)),
        service_yaml(&ServiceSpec {
            name: "kube-dns",
            namespace: "kube-system",
            cluster_ip: DNS_VIP,
            cluster_ipv6: None,
            external_ips: &[],
            port: 53,
            target: 53,
            protocol: "UDP",
            node_port: None,
            backend: dns,
        }),
    )
}

/// Serves one exchange on the web pod's 8080 (at its address of `to`'s family) and
/// runs a client against it from `namespace` to `to:port`, which must get "world" back.
fn exchange(web: &Pod, namespace: &Netns, to: impl Into<IpAddr>, port: u16) {
    exchanges(web, &[(namespace, to.into(), port)]);
}

/// Runs each client in turn against one listener on the web pod's 8080, bound once for
/// all of them: binding the port again right after the previous connection closed has
/// failed with "address in use" about once in a few hundred runs over IPv6.
fn exchanges(web: &Pod, clients: &[(&Netns, IpAddr, u16)]) {
    let Some(&(_, first, _)) = clients.first() else {
        return;
    };
    let family = if first.is_ipv6() { Family::V6 } else { Family::V4 };
    let listen = SocketAddr::new(family.of(web), 8080);
    let listener = web
        .netns
        .run(move || TcpListener::bind(listen))
        .expect("ns")
        .expect("listen");
    let count = clients.len();
    let server = std::thread::spawn(move || {
        for _ in 0..count {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 5];
            stream.read_exact(&mut request).expect("request");
            stream.write_all(b"world").expect("reply");
        }
    });
    for &(namespace, to, port) in clients {
        let answer = namespace
            .run(move || {
                let mut stream = TcpStream::connect_timeout(&SocketAddr::from((to, port)), Duration::from_secs(5))
                    .unwrap_or_else(|error| panic!("connect to {to}:{port}: {error}"));
                stream.write_all(b"hello").expect("send");
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).expect("answer");
                answer
            })
            .expect("client ns");
        assert_eq!(answer, b"world", "from {to}:{port}");
    }
    server.join().expect("server");
}

/// What netfilter translated and must never show in a flow.
#[derive(Debug, Clone, Copy)]
enum Hidden {
    /// A Service address (ClusterIP).
    Address(IpAddr),
    /// A NodePort, on whichever node address it was reached.
    Port(u16),
}

/// Connections of one address family to the web Service, masqueraded by the node,
/// from the client pod and from `remote_clients` (outside the node: seen only at the
/// web pod's veth).
struct ThroughService<'a> {
    family: Family,
    client: &'a Pod,
    web: &'a Pod,
    remote_clients: &'a [IpAddr],
    hidden: &'a [Hidden],
}

/// A TCP flow at the client pod's veth, of a connection to the web Service: the
/// request names the client pod, the web pod and the Service, with `masquerade` as
/// `source_xlated` ("" when not masqueraded); the reply comes from the web pod and
/// the Service. Returns whether it is the request.
fn assert_client_side(flow: &Flow, client_ip: IpAddr, web_ip: IpAddr, masquerade: &str) -> bool {
    let (source, destination) = addresses(flow);
    let (source_port, destination_port) = ports(flow).expect("ports");
    let web_pod = Some(("shop", "web-0"));
    let web_service = Some(("shop", "web"));
    if source == client_ip {
        assert_eq!((destination, destination_port), (web_ip, 8080), "{flow:?}");
        assert_eq!(pod_named(flow.destination.as_deref()), web_pod, "{flow:?}");
        assert_eq!(pod_named(flow.source.as_deref()), Some(("shop", "client")), "{flow:?}");
        assert_eq!(
            service_named(flow.destination_service.as_deref()),
            web_service,
            "{flow:?}"
        );
        assert_eq!(source_xlated(flow), masquerade, "masquerade: {flow:?}");
        true
    } else {
        assert_eq!(
            (source, source_port, destination),
            (web_ip, 8080, client_ip),
            "{flow:?}"
        );
        assert_eq!(pod_named(flow.source.as_deref()), web_pod, "{flow:?}");
        assert_eq!(service_named(flow.source_service.as_deref()), web_service, "{flow:?}");
        false
    }
}

/// Every TCP flow, at the client's and at the web pod's veth, in both directions,
/// names the web pod and the web Service and never what netfilter translated; the
/// web pod's side shows the client before masquerade and the masquerade address as
/// `source_xlated`. Each observation point and direction must have had flows.
fn assert_every_flow_names_the_web_pod_and_service(flows: &[Flow], through: &ThroughService<'_>) {
    let ThroughService {
        family,
        client,
        web,
        remote_clients,
        hidden,
    } = *through;
    let (client_ip, web_ip) = (family.of(client), family.of(web));
    let masquerade = family.gateway(web).to_string();
    let is_client = |ip: IpAddr| ip == client_ip || remote_clients.contains(&ip);
    let at = |flow: &Flow, pod: &Pod| on_interface(flow, pod.host_ifindex);
    let web_pod = Some(("shop", "web-0"));
    let client_pod = Some(("shop", "client"));
    let web_service = Some(("shop", "web"));
    let mut checked = [0usize; 4];
    for flow in flows.iter().filter(|f| is_tcp(f)) {
        let (source, destination) = addresses(flow);
        let (source_port, destination_port) = ports(flow).expect("ports");
        assert_eq!(
            source.is_ipv6(),
            family == Family::V6,
            "only {family:?} traffic: {flow:?}"
        );
        for hidden in hidden {
            match *hidden {
                Hidden::Address(vip) => assert!(source != vip && destination != vip, "a VIP is never shown: {flow:?}"),
                Hidden::Port(node_port) => assert!(
                    source_port != u32::from(node_port) && destination_port != u32::from(node_port),
                    "the NodePort is translated on every flow: {flow:?}"
                ),
            }
        }
        if at(flow, client) {
            let request = assert_client_side(flow, client_ip, web_ip, &masquerade);
            checked[usize::from(!request)] += 1;
        } else if at(flow, web) && destination == web_ip {
            checked[2] += 1;
            // Hubble's `source` is the client before masquerade, `source_xlated` after.
            assert!(is_client(source), "the client before masquerade: {flow:?}");
            assert_eq!(source_xlated(flow), masquerade, "{flow:?}");
            assert_eq!(pod_named(flow.destination.as_deref()), web_pod, "{flow:?}");
            assert_eq!(
                service_named(flow.destination_service.as_deref()),
                web_service,
                "{flow:?}"
            );
            if source == client_ip {
                assert_eq!(pod_named(flow.source.as_deref()), client_pod, "{flow:?}");
            }
        } else if at(flow, web) {
            checked[3] += 1;
            assert_eq!(source, web_ip, "{flow:?}");
            assert!(is_client(destination), "the client after un-masquerade: {flow:?}");
            assert_eq!(pod_named(flow.source.as_deref()), web_pod, "{flow:?}");
            assert_eq!(service_named(flow.source_service.as_deref()), web_service, "{flow:?}");
        }
    }
    assert!(
        checked.iter().all(|n| *n > 0),
        "flows per observation point and direction: {checked:?}"
    );
}

#[test]
fn every_flow_through_a_cluster_ip_names_the_backend_pod_and_the_service() {
    let mut node = Node::new().expect("node");
    let client = node.add_pod().expect("client pod");
    let web = node.add_pod().expect("web pod");
    let dns = node.add_pod().expect("dns pod");
    route_through_node(&node, &[&client, &web, &dns], &kube_proxy_rules(&web, &dns));

    let agent = EnrichedAgent::start(&node, &manifests(&client, &web, &dns), &[&client, &web, &dns]);

    // TCP: client → web VIP:80, served on the pod's 8080.
    exchange(&web, &client.netns, WEB_VIP, 80);

    // UDP DNS: client → kube-dns VIP:53, answered by the CoreDNS pod.
    let _dns_server = DnsServer::start(
        &dns,
        HashMap::from([("web.shop.svc.cluster.local.".to_string(), WEB_VIP)]),
    )
    .expect("dns server");
    let dns_answer = client
        .netns
        .run(|| {
            let socket = UdpSocket::bind("0.0.0.0:0").expect("bind");
            socket.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
            socket
                .send_to(
                    &sightline_e2e::dns_server::query(7, "web.shop.svc.cluster.local."),
                    (DNS_VIP, 53),
                )
                .expect("query");
            let mut buf = [0u8; 512];
            socket.recv(&mut buf).expect("dns answer")
        })
        .expect("client ns");
    assert!(dns_answer > 12);

    let (client_ip, web_ip, dns_ip) = (IpAddr::V4(client.ipv4), IpAddr::V4(web.ipv4), IpAddr::V4(dns.ipv4));
    let on = |flow: &Flow, pod: &Pod| on_interface(flow, pod.host_ifindex);
    let is_dns_l7 = |flow: &Flow| {
        matches!(
            flow.l7.as_ref().and_then(|l| l.record.as_ref()),
            Some(layer7::Record::Dns(_))
        )
    };
    // Wait until both veths saw both directions of the TCP connection, and the DNS
    // query and its answer became L7 flows.
    agent.wait_for(|flows| {
        let seen = |select: &dyn Fn(&Flow) -> bool| flows.iter().any(select);
        seen(&|f| on(f, &client) && is_tcp(f) && addresses(f).0 == client_ip)
            && seen(&|f| on(f, &client) && is_tcp(f) && addresses(f).1 == client_ip)
            && seen(&|f| on(f, &web) && is_tcp(f) && addresses(f).1 == web_ip)
            && seen(&|f| on(f, &web) && is_tcp(f) && addresses(f).0 == web_ip)
            && flows.iter().filter(|f| on(f, &client) && is_dns_l7(f)).count() >= 2
    });
    let flows = agent.stop();
    assert_every_flow_names_the_web_pod_and_service(
        &flows,
        &ThroughService {
            family: Family::V4,
            client: &client,
            web: &web,
            remote_clients: &[],
            hidden: &[Hidden::Address(IpAddr::V4(WEB_VIP))],
        },
    );

    let dns_pod = Some(("kube-system", "coredns-0"));
    let dns_service = Some(("kube-system", "kube-dns"));
    let l7: Vec<&Flow> = flows.iter().filter(|f| on(f, &client) && is_dns_l7(f)).collect();
    let request = l7
        .iter()
        .find(|f| is_reply(f) == Some(false))
        .expect("DNS request at the client");
    assert_eq!(addresses(request).1, dns_ip, "{request:?}");
    assert_eq!(pod_named(request.destination.as_deref()), dns_pod, "{request:?}");
    assert_eq!(service_named(request.destination_service.as_deref()), dns_service);
    let response = l7
        .iter()
        .find(|f| is_reply(f) == Some(true))
        .expect("DNS response at the client");
    assert_eq!(addresses(response).0, dns_ip, "{response:?}");
    assert_eq!(pod_named(response.source.as_deref()), dns_pod, "{response:?}");
    assert_eq!(service_named(response.source_service.as_deref()), dns_service);
}

/// A client outside the node reaches the web Service through its external IP; the
/// node translates and masquerades it. Only the backend's veth sees the connection,
/// already translated: the agent finds the Service and the real client from
/// conntrack's entry for the reply tuple.
#[test]
fn a_remote_client_through_an_external_ip_is_named_at_the_backend_with_the_service() {
    let mut node = Node::new().expect("node");
    let client = node.add_pod().expect("client pod");
    let web = node.add_pod().expect("web pod");
    let dns = node.add_pod().expect("dns pod");
    route_through_node(&node, &[&client, &web, &dns], &kube_proxy_rules(&web, &dns));
    let remote = RemoteHost::attach(&node);
    let agent = EnrichedAgent::start(&node, &manifests(&client, &web, &dns), &[&client, &web, &dns]);

    exchange(&web, &remote.netns, WEB_EXTERNAL, 80);

    let (remote_ip, web_ip) = (IpAddr::V4(remote.ipv4), IpAddr::V4(web.ipv4));
    let at_web = |flow: &Flow| on_interface(flow, web.host_ifindex) && is_tcp(flow);
    agent.wait_for(|flows| {
        flows.iter().any(|f| at_web(f) && addresses(f).1 == web_ip)
            && flows.iter().any(|f| at_web(f) && addresses(f).0 == web_ip)
    });
    let flows = agent.stop();
    let gateway = gateway(&web).to_string();
    let web_service = Some(("shop", "web"));
    let (mut requests, mut replies) = (0, 0);
    for flow in flows.iter().filter(|f| at_web(f)) {
        let (source, destination) = addresses(flow);
        if destination == web_ip {
            requests += 1;
            assert_eq!(source, remote_ip, "the client before masquerade: {flow:?}");
            assert_eq!(source_xlated(flow), gateway, "{flow:?}");
            assert_eq!(
                service_named(flow.destination_service.as_deref()),
                web_service,
                "{flow:?}"
            );
            assert_eq!(pod_named(flow.destination.as_deref()), Some(("shop", "web-0")));
        } else {
            replies += 1;
            assert_eq!((source, destination), (web_ip, remote_ip), "{flow:?}");
            assert_eq!(service_named(flow.source_service.as_deref()), web_service, "{flow:?}");
            assert_eq!(pod_named(flow.source.as_deref()), Some(("shop", "web-0")));
        }
    }
    assert!(requests > 0 && replies > 0, "requests {requests}, replies {replies}");
    assert!(
        !flows.iter().any(|f| on_interface(f, client.host_ifindex) && is_tcp(f)),
        "the client pod took no part"
    );
}

/// A NodePort is reached on any address of the node: from outside on its uplink
/// address, from a pod on its bridge address. Both connections are translated and
/// masqueraded here; every flow names the web pod and the Service, and the node
/// address with the NodePort is never shown (only `destination_service` recalls it,
/// as for a VIP). The client pod also goes through the ClusterIP of the same family.
#[test]
fn a_node_port_on_any_node_address_names_the_service_and_the_backend_on_every_flow() {
    node_port_on_any_node_address(Family::V4);
}

/// The same over IPv6: the dual-stack Service's NodePort on the node's IPv6
/// addresses and its IPv6 ClusterIP, translated by the `ip6` table.
#[test]
fn an_ipv6_node_port_on_any_node_address_names_the_service_and_the_backend_on_every_flow() {
    node_port_on_any_node_address(Family::V6);
}

fn node_port_on_any_node_address(family: Family) {
    let mut node = Node::new().expect("node");
    let client = node.add_pod().expect("client pod");
    let web = node.add_pod().expect("web pod");
    let dns = node.add_pod().expect("dns pod");
    route_through_node(&node, &[&client, &web, &dns], &kube_proxy_rules(&web, &dns));
    let remote = RemoteHost::attach(&node);
    let (remote_ip, uplink_address, cluster_ip) = match family {
        Family::V4 => (
            IpAddr::V4(remote.ipv4),
            IpAddr::V4(remote.node_ipv4),
            IpAddr::V4(WEB_VIP),
        ),
        Family::V6 => {
            route_pods_ipv6(&node, &[&client, &web, &dns]);
            let link = remote.enable_ipv6(&node);
            (IpAddr::V6(link.remote), IpAddr::V6(link.node), IpAddr::V6(WEB_VIP6))
        }
    };
    let cluster = format!(
        "{}{}",
        manifests(&client, &web, &dns),
        node_yaml(NODE_NAME, uplink_address)
    );
    let agent = EnrichedAgent::start(&node, &cluster, &[&client, &web, &dns]);

    exchanges(
        &web,
        &[
            (&remote.netns, uplink_address, WEB_NODE_PORT),
            (&client.netns, family.gateway(&web), WEB_NODE_PORT),
            (&client.netns, cluster_ip, 80),
        ],
    );

    let (client_ip, web_ip) = (family.of(&client), family.of(&web));
    let at = |flow: &Flow, pod: &Pod| on_interface(flow, pod.host_ifindex) && is_tcp(flow);
    agent.wait_for(|flows| {
        let seen = |select: &dyn Fn(&Flow) -> bool| flows.iter().any(select);
        seen(&|f| at(f, &client) && addresses(f).0 == client_ip)
            && seen(&|f| at(f, &client) && addresses(f).1 == client_ip)
            && seen(&|f| at(f, &web) && addresses(f).1 == web_ip && addresses(f).0 == remote_ip)
            && seen(&|f| at(f, &web) && addresses(f).1 == web_ip && addresses(f).0 == client_ip)
            && seen(&|f| at(f, &web) && addresses(f).0 == web_ip && addresses(f).1 == remote_ip)
            && seen(&|f| at(f, &web) && addresses(f).0 == web_ip && addresses(f).1 == client_ip)
    });
    let flows = agent.stop();
    assert_every_flow_names_the_web_pod_and_service(
        &flows,
        &ThroughService {
            family,
            client: &client,
            web: &web,
            remote_clients: &[remote_ip],
            hidden: &[Hidden::Port(WEB_NODE_PORT), Hidden::Address(cluster_ip)],
        },
    );
    // The remote client's connection itself was seen at the web pod, both ways.
    for (source, destination) in [(remote_ip, web_ip), (web_ip, remote_ip)] {
        assert!(
            flows
                .iter()
                .any(|f| at(f, &web) && addresses(f) == (source, destination)),
            "{source} → {destination} at the web pod"
        );
    }
}

/// kube-proxy on the client's node (A) DNATs a ClusterIP to a backend on node B;
/// pod-to-pod traffic is not masqueraded (kube-proxy masquerades only what comes
/// from outside the cluster CIDR). A's agent sees the connection before DNAT and has
/// it in its conntrack: the client's flows name the remote backend and the Service.
/// B's agent sees pod to pod, with no translation in B's conntrack: its flows name
/// both pods and, as Hubble's (which looks the flow's own addresses up as Service
/// frontends), no Service.
#[test]
fn a_cluster_ip_translated_on_the_clients_node_names_the_remote_backend_and_the_service_there() {
    let mut node_a = Node::new().expect("node a");
    let mut node_b = Node::new().expect("node b");
    let client = node_a.add_pod().expect("client pod");
    let web = node_b.add_pod().expect("web pod");
    route_pods(&node_a, &[&client]);
    route_pods(&node_b, &[&web]);
    let (a_ipv4, b_ipv4) = link_nodes(&node_a, &client, &node_b, &web);
    install_rules(
        &node_a,
        &format!(
            "table ip sightline-kube-proxy {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {WEB_VIP} tcp dport 80 dnat to {web}:8080
  }}
}}
",
            web = web.ipv4
        ),
    );
    let cluster = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n{}{}{}{}{}",
        node_yaml("node-a", a_ipv4),
        node_yaml("node-b", b_ipv4),
        pod_yaml_on("node-a", "client", "shop", &client, "app: client"),
        pod_yaml_on("node-b", "web-0", "shop", &web, "app: web"),
        service_yaml(&ServiceSpec {
            node_port: None,
            external_ips: &[],
            cluster_ipv6: None,
            ..web_service(&web)
        }),
    );
    let agent_a = EnrichedAgent::start_as(&node_a, "node-a", &cluster, &[&client]);
    let agent_b = EnrichedAgent::start_as(&node_b, "node-b", &cluster, &[&web]);

    exchange(&web, &client.netns, WEB_VIP, 80);

    let (client_ip, web_ip) = (IpAddr::V4(client.ipv4), IpAddr::V4(web.ipv4));
    let both_ways = |pod: &Pod| {
        let ifindex = pod.host_ifindex;
        move |flows: &[Flow]| {
            let seen = |to_client: bool| {
                flows
                    .iter()
                    .any(|f| on_interface(f, ifindex) && is_tcp(f) && (addresses(f).1 == client_ip) == to_client)
            };
            seen(true) && seen(false)
        }
    };
    agent_a.wait_for(both_ways(&client));
    agent_b.wait_for(both_ways(&web));
    let (flows_a, flows_b) = (agent_a.stop(), agent_b.stop());
    let web_pod = Some(("shop", "web-0"));
    let client_pod = Some(("shop", "client"));

    let (mut requests, mut replies) = (0, 0);
    for flow in flows_a
        .iter()
        .filter(|f| on_interface(f, client.host_ifindex) && is_tcp(f))
    {
        // Not masqueraded: pod-to-pod traffic keeps its source.
        if assert_client_side(flow, client_ip, web_ip, "") {
            requests += 1;
        } else {
            replies += 1;
        }
    }
    assert!(
        requests > 0 && replies > 0,
        "node A: requests {requests}, replies {replies}"
    );

    let (mut requests, mut replies) = (0, 0);
    for flow in flows_b
        .iter()
        .filter(|f| on_interface(f, web.host_ifindex) && is_tcp(f))
    {
        let (source, destination) = addresses(flow);
        if destination == web_ip {
            requests += 1;
            assert_eq!(source, client_ip, "{flow:?}");
            assert_eq!(pod_named(flow.source.as_deref()), client_pod, "{flow:?}");
            assert_eq!(pod_named(flow.destination.as_deref()), web_pod, "{flow:?}");
            assert_eq!(flow.destination_service, None, "{flow:?}");
        } else {
            replies += 1;
            assert_eq!((source, destination), (web_ip, client_ip), "{flow:?}");
            assert_eq!(pod_named(flow.destination.as_deref()), client_pod, "{flow:?}");
            assert_eq!(flow.source_service, None, "{flow:?}");
        }
    }
    assert!(
        requests > 0 && replies > 0,
        "node B: requests {requests}, replies {replies}"
    );
}
