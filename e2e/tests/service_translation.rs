//! Traffic through a Service address translated by a kube-proxy-style nftables DNAT
//! (with masquerade) in the node's namespace: every flow of the connection, at the
//! client's and at the backend's veth, in both directions, names the backend pod and
//! carries the Service, as Hubble shows it. The same for DNS through the kube-dns VIP.
//! Run as root.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_agent::datapath::{self, DatapathArgs};
use sightline_agent::enrich::IndexConfig;
use sightline_agent::event::{Event, EventSink};
use sightline_agent::k8s::{self, K8sArgs};
use sightline_e2e::{DnsServer, Node, Pod};
use sightline_proto::flow::{Endpoint, Flow, layer4, layer7};
use support::{is_reply, on_interface, wait_attached};

const NODE_NAME: &str = "test-node";
const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const DNS_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 53);

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Event>>>);

impl EventSink for Collect {
    fn publish(&mut self, event: Event) {
        self.0.lock().expect("events").push(event);
    }
}

impl Collect {
    fn flows(&self) -> Vec<Flow> {
        self.0
            .lock()
            .expect("events")
            .iter()
            .filter_map(|e| match e {
                Event::Flow(f) => Some(f.to_flow()),
                _ => None,
            })
            .collect()
    }
}

fn pod_yaml(name: &str, namespace: &str, pod: &Pod, labels: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}, uid: uid-{name}, labels: {{{labels}}}}}
spec: {{nodeName: {NODE_NAME}, containers: [{{name: main, image: example}}]}}
status: {{phase: Running, podIP: \"{ip}\", podIPs: [{{ip: \"{ip}\"}}]}}
---
",
        ip = pod.ipv4
    )
}

fn service_yaml(
    name: &str,
    namespace: &str,
    vip: Ipv4Addr,
    port: u16,
    target: u16,
    protocol: &str,
    backend: &Pod,
) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}, uid: uid-svc-{name}}}
spec: {{type: ClusterIP, clusterIP: \"{vip}\", clusterIPs: [\"{vip}\"], ports: [{{port: {port}, targetPort: {target}, protocol: {protocol}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: {namespace}, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
endpoints: [{{addresses: [\"{ip}\"]}}]
ports: [{{port: {target}, protocol: {protocol}}}]
---
",
        ip = backend.ipv4
    )
}

/// What kube-proxy installs for the two Services: DNAT in prerouting, masquerade of
/// what was DNATed (so replies return through the node to be un-NATed).
fn kube_proxy_rules(web: &Pod, dns: &Pod) -> String {
    format!(
        "table ip sightline-kube-proxy {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {WEB_VIP} tcp dport 80 dnat to {web}:8080
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

fn gateway(pod: &Pod) -> Ipv4Addr {
    let [a, b, c, _] = pod.ipv4.octets();
    Ipv4Addr::new(a, b, c, 1)
}

/// Routes pods through the node (a gateway on the bridge, forwarding on) and
/// installs the Service rules.
fn route_through_node(node: &Node, pods: &[&Pod], rules: &str) {
    let gateway = gateway(pods[0]);
    let netns = node.netns();
    netns
        .ip(&["addr", "add", &format!("{gateway}/24"), "dev", "br0"])
        .expect("gateway address");
    let forwarding = netns.exec("sysctl", &["-w", "net.ipv4.ip_forward=1"]).expect("sysctl");
    assert!(forwarding.status.success(), "{forwarding:?}");
    for pod in pods {
        pod.netns
            .ip(&["route", "add", "default", "via", &gateway.to_string()])
            .expect("default route");
    }
    let file = tempfile::NamedTempFile::new().expect("rules file");
    std::fs::write(file.path(), rules).expect("write rules");
    let path = file.path().to_str().expect("utf-8 path");
    let nft = netns.exec("nft", &["-f", path]).expect("nft");
    assert!(nft.status.success(), "nft -f: {}", String::from_utf8_lossy(&nft.stderr));
}

fn pod_named(endpoint: Option<&Endpoint>) -> Option<(&str, &str)> {
    endpoint.map(|e| (e.namespace.as_str(), e.pod_name.as_str()))
}

fn service_named(service: Option<&sightline_proto::flow::Service>) -> Option<(&str, &str)> {
    service.map(|s| (s.namespace.as_str(), s.name.as_str()))
}

fn ports(flow: &Flow) -> Option<(u32, u32)> {
    match flow.l4.as_ref()?.protocol.as_ref()? {
        layer4::Protocol::Tcp(t) => Some((t.source_port, t.destination_port)),
        layer4::Protocol::Udp(u) => Some((u.source_port, u.destination_port)),
        _ => None,
    }
}

fn addresses(flow: &Flow) -> (IpAddr, IpAddr) {
    let ip = flow.ip.as_ref().expect("ip");
    (
        ip.source.parse().expect("source"),
        ip.destination.parse().expect("destination"),
    )
}

fn is_tcp(flow: &Flow) -> bool {
    matches!(
        flow.l4.as_ref().and_then(|l| l.protocol.as_ref()),
        Some(layer4::Protocol::Tcp(_))
    )
}

#[test]
fn every_flow_through_a_cluster_ip_names_the_backend_pod_and_the_service() {
    let mut node = Node::new().expect("node");
    let client = node.add_pod().expect("client pod");
    let web = node.add_pod().expect("web pod");
    let dns = node.add_pod().expect("dns pod");
    route_through_node(&node, &[&client, &web, &dns], &kube_proxy_rules(&web, &dns));

    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: {{name: kube-system}}\n---\n{}{}{}{}{}",
        pod_yaml("client", "shop", &client, "app: client"),
        pod_yaml("web-0", "shop", &web, "app: web"),
        pod_yaml("coredns-0", "kube-system", &dns, "k8s-app: kube-dns"),
        service_yaml("web", "shop", WEB_VIP, 80, 8080, "TCP", &web),
        service_yaml("kube-dns", "kube-system", DNS_VIP, 53, 53, "UDP", &dns),
    );
    std::fs::write(dir.path().join("cluster.yaml"), manifests).expect("write");
    let k8s_args = K8sArgs {
        kubeconfig: None,
        manifests: Some(dir.path().to_owned()),
        k8s_disabled: false,
        cluster_domain: "cluster.local".into(),
    };
    let collect = Collect::default();
    let sink = collect.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = node
        .netns()
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let k8s = k8s::start(
                    &k8s_args,
                    IndexConfig {
                        cluster: "default".into(),
                        local_node: NODE_NAME.into(),
                        agent_port: 4244,
                    },
                )
                .await
                .map_err(|e| e.to_string())?
                .ok_or("manifests mode must enable enrichment")?;
                let mut enricher = k8s.enricher(sink);
                datapath::run(DatapathArgs::default(), NODE_NAME.to_owned(), &mut enricher, async {
                    let _ = stopped.await;
                })
                .await
                .map_err(|e| e.to_string())
            })
        })
        .expect("agent thread");
    wait_attached(node.netns(), &[&client.host_veth, &web.host_veth, &dns.host_veth]);

    // TCP: client → web VIP:80, served on the pod's 8080.
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
    let answer = client
        .netns
        .run(|| {
            let mut stream =
                TcpStream::connect_timeout(&SocketAddr::from((WEB_VIP, 80)), Duration::from_secs(5)).expect("connect");
            stream.write_all(b"hello").expect("send");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).expect("answer");
            answer
        })
        .expect("client ns");
    assert_eq!(answer, b"world");
    server.join().expect("server");

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
    let deadline = Instant::now() + Duration::from_secs(10);
    let flows = loop {
        let flows = collect.flows();
        let seen = |select: &dyn Fn(&Flow) -> bool| flows.iter().any(select);
        let done = seen(&|f| on(f, &client) && is_tcp(f) && addresses(f).0 == client_ip)
            && seen(&|f| on(f, &client) && is_tcp(f) && addresses(f).1 == client_ip)
            && seen(&|f| on(f, &web) && is_tcp(f) && addresses(f).1 == web_ip)
            && seen(&|f| on(f, &web) && is_tcp(f) && addresses(f).0 == web_ip)
            && flows.iter().filter(|f| on(f, &client) && is_dns_l7(f)).count() >= 2;
        if done || Instant::now() > deadline {
            break flows;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = stop.send(());
    agent.join().expect("agent thread").expect("agent run");

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
        } else if on(flow, &web) {
            checked[3] += 1;
            assert_eq!(source, web_ip, "{flow:?}");
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
