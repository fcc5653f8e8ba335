//! Traffic through a Service address translated by a kube-proxy-style nftables DNAT
//! (with masquerade) in the node's namespace: every flow of the connection, at the
//! client's and at the backend's veth, in both directions, names the backend pod and
//! carries the Service, as Hubble shows it. The same for DNS through the kube-dns VIP.
//! Run as root.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use sightline_e2e::{DnsServer, Netns, Node, Pod};
use sightline_proto::flow::{Flow, layer7};
use support::services::{
    EnrichedAgent, RemoteHost, ServiceSpec, addresses, gateway, is_tcp, pod_named, pod_yaml, route_through_node,
    service_named, service_yaml, source_xlated,
};
use support::{is_reply, on_interface, ports};

const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const DNS_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 53);
/// A Service external IP (TEST-NET-3) that the node routes for.
const WEB_EXTERNAL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// What kube-proxy installs for the two Services: DNAT in prerouting, masquerade of
/// what was DNATed (so replies return through the node to be un-NATed).
fn kube_proxy_rules(web: &Pod, dns: &Pod) -> String {
    format!(
        "table ip sightline-kube-proxy {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {{ {WEB_VIP}, {WEB_EXTERNAL} }} tcp dport 80 dnat to {web}:8080
    ip daddr {DNS_VIP} udp dport 53 dnat to {dns}:53
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ct status dnat masquerade
  }}
}}
",
        web = web.ipv4,
        dns = dns.ipv4
    )
}

fn web_service(web: &Pod) -> ServiceSpec<'_> {
    ServiceSpec {
        name: "web",
        namespace: "shop",
        cluster_ip: WEB_VIP,
        external_ips: &[WEB_EXTERNAL],
        port: 80,
        target: 8080,
        protocol: "TCP",
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
            external_ips: &[],
            port: 53,
            target: 53,
            protocol: "UDP",
            backend: dns,
        }),
    )
}

/// Serves one exchange on the web pod's 8080 and runs `client` against it from
/// `namespace`, which must get "world" back.
fn exchange(web: &Pod, namespace: &Netns, to: Ipv4Addr) {
    let listen = SocketAddr::from((web.ipv4, 8080));
    let listener = web
        .netns
        .run(move || TcpListener::bind(listen))
        .expect("ns")
        .expect("listen");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = [0u8; 5];
        stream.read_exact(&mut request).expect("request");
        stream.write_all(b"world").expect("reply");
    });
    let answer = namespace
        .run(move || {
            let mut stream =
                TcpStream::connect_timeout(&SocketAddr::from((to, 80)), Duration::from_secs(5)).expect("connect");
            stream.write_all(b"hello").expect("send");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).expect("answer");
            answer
        })
        .expect("client ns");
    assert_eq!(answer, b"world");
    server.join().expect("server");
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
    exchange(&web, &client.netns, WEB_VIP);

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
    let gateway = gateway(&web).to_string();

    let web_pod = Some(("shop", "web-0"));
    let web_service = Some(("shop", "web"));
    let mut checked = [0usize; 4];
    for flow in flows.iter().filter(|f| is_tcp(f)) {
        let (source, destination) = addresses(flow);
        let (source_port, destination_port) = ports(flow).expect("ports");
        assert_ne!(destination, IpAddr::V4(WEB_VIP), "a VIP is never shown: {flow:?}");
        assert_ne!(source, IpAddr::V4(WEB_VIP), "a VIP is never shown: {flow:?}");
        if on(flow, &client) && source == client_ip {
            checked[0] += 1;
            assert_eq!((destination, destination_port), (web_ip, 8080), "{flow:?}");
            assert_eq!(pod_named(flow.destination.as_deref()), web_pod, "{flow:?}");
            assert_eq!(pod_named(flow.source.as_deref()), Some(("shop", "client")));
            assert_eq!(
                service_named(flow.destination_service.as_deref()),
                web_service,
                "{flow:?}"
            );
            assert_eq!(source_xlated(flow), gateway, "masqueraded: {flow:?}");
        } else if on(flow, &client) {
            checked[1] += 1;
            assert_eq!(
                (source, source_port, destination),
                (web_ip, 8080, client_ip),
                "{flow:?}"
            );
            assert_eq!(pod_named(flow.source.as_deref()), web_pod, "{flow:?}");
            assert_eq!(service_named(flow.source_service.as_deref()), web_service, "{flow:?}");
        } else if on(flow, &web) && destination == web_ip {
            checked[2] += 1;
            assert_eq!(pod_named(flow.destination.as_deref()), web_pod, "{flow:?}");
            assert_eq!(
                service_named(flow.destination_service.as_deref()),
                web_service,
                "{flow:?}"
            );
            // Hubble's `source` is the client before masquerade, `source_xlated` after.
            assert_eq!(source, client_ip, "{flow:?}");
            assert_eq!(pod_named(flow.source.as_deref()), Some(("shop", "client")));
            assert_eq!(source_xlated(flow), gateway, "{flow:?}");
        } else if on(flow, &web) {
            checked[3] += 1;
            assert_eq!((source, destination), (web_ip, client_ip), "{flow:?}");
            assert_eq!(pod_named(flow.source.as_deref()), web_pod, "{flow:?}");
            assert_eq!(service_named(flow.source_service.as_deref()), web_service, "{flow:?}");
        }
    }
    assert!(
        checked.iter().all(|n| *n > 0),
        "flows per observation point and direction: {checked:?}"
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

    exchange(&web, &remote.netns, WEB_EXTERNAL);

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
