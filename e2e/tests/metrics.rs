//! Hubble's flow metrics from real kernel traffic: the agent binary on a node's veths
//! with `--manifests` metadata and `--metrics-server`, pods in two namespaces talking
//! HTTP, DNS through a real DNS server, ping, a connection an nft rule drops, and a ping
//! to an address outside the cluster. A scrape shows what the traffic was, promtool
//! accepts it, and a real Prometheus server answers Hubble's dashboard queries. Run as
//! root after `cargo build --bins`.

#[allow(dead_code)]
mod binaries;
#[path = "../../agent/tests/prometheus_support/mod.rs"]
mod prometheus_support;
mod support;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use prometheus_support::{Process, Prometheus, http_get, promtool_check, samples, total, value, wait_for};
use sightline_e2e::{DnsServer, Netns, Node, Pod, dns_server};
use support::services::{RemoteHost, pod_yaml, route_through_node};

const METRICS: &str = "dns:query;ignoreAAAA drop:sourceContext=pod;destinationContext=pod tcp flow port-distribution icmp flows-to-world:any-drop;port httpV2:labelsContext=source_namespace,destination_namespace";
const DNS_NAME: &str = "api.payments.svc.cluster.local.";
const HTTP_PORT: u16 = 8080;
const BLOCKED_PORT: u16 = 9;

/// Both listen inside the node's namespace, where nothing else runs.
fn metrics_address() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 9965))
}

fn prometheus_address() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 9090))
}

/// A GET from inside `netns`.
fn fetch_in(netns: &Netns, address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let path = path.to_owned();
    netns.run(move || http_get(address, &path)).ok().flatten()
}

fn scrape(node: &Node) -> Option<String> {
    fetch_in(node.netns(), metrics_address(), "/metrics")
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
}

/// Scrapes until `done` holds for the text (10 s at most); returns the last scrape.
fn scrape_until(node: &Node, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let reached = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(what, Duration::from_secs(10), || {
            let text = scrape(node)?;
            let ok = done(&text);
            last = text.clone();
            ok.then_some(text)
        })
    }));
    reached.unwrap_or_else(|_| panic!("{what}: not within 10 s; last scrape:\n{last}"))
}

/// The agent binary in the node's namespace, observing the pods' veths, with the pods
/// described in `<dir>/manifests`; its socket and log in `dir`.
fn start_agent(node: &Node, dir: &std::path::Path) -> Process {
    let binary = binaries::binary("sightline-agent");
    assert!(
        binary.exists(),
        "{} missing: cargo build --bins first",
        binary.display()
    );
    let mut command = node.netns().command(binary.to_str().expect("utf-8 path"));
    command
        .args([
            "--node-name",
            support::services::NODE_NAME,
            "--listen-address",
            "",
            "--interfaces",
            "slv*",
            "--l7-ports",
            &format!("http={HTTP_PORT}"),
            "--metrics-server",
            &metrics_address().to_string(),
            "--metrics",
            METRICS,
        ])
        .arg("--socket-path")
        .arg(dir.join("hubble.sock"))
        .arg("--manifests")
        .arg(dir.join("manifests"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("agent.log")).expect("agent log"));
    Process(command.spawn().expect("agent starts"))
}

/// `python3 -m http.server` over HTTP/1.1 in `pod`, serving one file: `/ok` is a 200,
/// anything else a 404.
fn http_server(pod: &Pod, root: &std::path::Path) -> Process {
    std::fs::write(root.join("ok"), "fine\n").expect("page");
    let child = pod
        .netns
        .command("python3")
        .args(["-m", "http.server", "--protocol", "HTTP/1.1", "--bind"])
        .arg(pod.ipv4.to_string())
        .arg("--directory")
        .arg(root)
        .arg(HTTP_PORT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let address = SocketAddr::from((pod.ipv4, HTTP_PORT));
    wait_for("the HTTP server", Duration::from_secs(10), || {
        pod.netns
            .run(move || TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok())
            .expect("ns")
            .then_some(())
    });
    Process(child)
}

/// curl fetching `/ok` and `/missing` over one keep-alive connection.
fn two_requests(client: &Pod, server: &Pod) {
    let base = format!("http://{}:{HTTP_PORT}", server.ipv4);
    let output = client
        .netns
        .command("curl")
        .args(["-sS", "--max-time", "5"])
        .args(["-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n"])
        .arg(format!("{base}/ok"))
        .args(["-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n"])
        .arg(format!("{base}/missing"))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "200 1\n404 0\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An A query, then an AAAA query for the same name, from `client`; both answered.
fn dns_queries(client: &Pod, server: SocketAddr) {
    let bind = SocketAddr::from((client.ipv4, 0));
    let socket = client
        .netns
        .run(move || UdpSocket::bind(bind))
        .expect("ns")
        .expect("bind");
    socket.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let a = dns_server::query(0x0a0a, DNS_NAME);
    let mut aaaa = dns_server::query(0x0b0b, DNS_NAME);
    // The question's type, just before its class: 28 = AAAA.
    let qtype = aaaa.len() - 3;
    aaaa[qtype] = 28;
    for query in [a, aaaa] {
        socket.send_to(&query, server).expect("query");
        let mut answer = [0u8; 512];
        let (len, _) = socket.recv_from(&mut answer).expect("answer");
        assert!(len > 12 && answer[..2] == query[..2], "an answer to each query");
    }
}

fn ping(from: &Pod, to: Ipv4Addr, count: u32) {
    let out = from
        .netns
        .exec("ping", &["-n", "-c", &count.to_string(), "-W", "2", &to.to_string()])
        .expect("ping");
    assert!(out.status.success(), "ping {to}");
}

/// A connection attempt from `client` that the rule in `server` drops; one SYN (the
/// first retransmission would come after 1 s).
fn dropped_connection(client: &Pod, server: &Pod) {
    let address = SocketAddr::from((server.ipv4, BLOCKED_PORT));
    let attempt = client
        .netns
        .run(move || TcpStream::connect_timeout(&address, Duration::from_millis(300)))
        .expect("ns");
    assert!(attempt.is_err(), "the nft rule drops the connection");
}

#[test]
fn a_scrape_and_prometheus_show_the_real_traffic_of_pods() {
    let mut node = Node::new().expect("node");
    let frontend = node.add_pod().expect("frontend pod");
    let api = node.add_pod().expect("api pod");
    let coredns = node.add_pod().expect("coredns pod");
    // Only the frontend gets a way out of the cluster: the others' reverse lookups of
    // their own addresses (Python's http.server does one) then fail without a packet.
    route_through_node(&node, &[&frontend], "");
    let world = RemoteHost::attach(&node);

    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = [
        pod_yaml("frontend", "shop", &frontend, "app: frontend"),
        pod_yaml("api", "payments", &api, "app: api"),
        pod_yaml("coredns", "kube-system", &coredns, "k8s-app: kube-dns"),
    ]
    .concat();
    std::fs::create_dir(dir.path().join("manifests")).expect("manifests directory");
    std::fs::write(dir.path().join("manifests/cluster.yaml"), manifests).expect("manifests");
    let _agent = start_agent(&node, dir.path());
    let serving = std::panic::catch_unwind(|| {
        support::wait_attached(node.netns(), &[&frontend.host_veth, &api.host_veth, &coredns.host_veth]);
        wait_for("/metrics", Duration::from_secs(10), || scrape(&node));
    });
    if serving.is_err() {
        let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
        panic!("the agent did not start; its log:\n{log}");
    }
    let prometheus = Prometheus::start(
        node.netns().command("prometheus"),
        prometheus_address(),
        metrics_address(),
        Box::new(|address, path| fetch_in(node.netns(), address, path)),
    );

    for rule in [
        "add table inet slmetrics".to_owned(),
        "add chain inet slmetrics input { type filter hook input priority 0 ; }".to_owned(),
        format!("add rule inet slmetrics input tcp dport {BLOCKED_PORT} drop"),
    ] {
        api.netns.exec("nft", &[&rule]).expect("nft rule");
    }
    let site = tempfile::tempdir().expect("site");
    let _http = http_server(&api, site.path());
    let records = HashMap::from([(DNS_NAME.to_owned(), api.ipv4)]);
    let dns = DnsServer::start(&coredns, records).expect("dns server");

    two_requests(&frontend, &api);
    dns_queries(&frontend, dns.address);
    ping(&frontend, api.ipv4, 1);
    dropped_connection(&frontend, &api);
    ping(&frontend, world.ipv4, 1);

    // What the traffic adds up to. The datapath reports a packet where it crosses a pod's
    // veth, so traffic between two pods of the node counts twice (leaving one pod and
    // entering the other) and traffic to the world once. L7 flows come once, from the
    // client's side. The pods' own IPv6 chatter (router and neighbour solicitations, MLD)
    // is real too: the assertions name IPv4 and the protocols of the test's traffic.
    let flow = |labels: &str| format!("hubble_flows_processed_total{{{labels}}}");
    let expected: Vec<(String, f64)> = vec![
        // Two requests and two responses; an A and an AAAA query, each answered.
        (flow(r#"protocol="HTTP",type="L7",subtype="HTTP",verdict="FORWARDED""#), 4.0),
        (flow(r#"protocol="DNS",type="L7",subtype="DNS",verdict="FORWARDED""#), 4.0),
        // The SYN the rule drops inside the api pod.
        (flow(r#"protocol="TCP",type="Drop",subtype="",verdict="DROPPED""#), 1.0),
        // ignoreAAAA: the A query alone, with its name (the query option).
        (
            format!(r#"hubble_dns_queries_total{{rcode="",qtypes="A",ips_returned="0",query="{DNS_NAME}"}}"#),
            1.0,
        ),
        (
            format!(r#"hubble_dns_responses_total{{rcode="No Error",qtypes="A",ips_returned="1",query="{DNS_NAME}"}}"#),
            1.0,
        ),
        (
            r#"hubble_drop_total{source="shop/frontend",destination="payments/api",reason="POLICY_DENIED",protocol="TCP"}"#.into(),
            1.0,
        ),
        // One echo between the pods (seen at both veths), one to the world (at one).
        (r#"hubble_icmp_total{family="IPv4",type="EchoRequest"}"#.into(), 3.0),
        (r#"hubble_icmp_total{family="IPv4",type="EchoReply"}"#.into(), 3.0),
        // The HTTP connection's handshake and both FINs, and the dropped SYN: at both veths
        // (the SYN was forwarded into the api pod before its firewall dropped it).
        (r#"hubble_tcp_flags_total{flag="SYN",family="IPv4"}"#.into(), 4.0),
        (r#"hubble_tcp_flags_total{flag="SYN-ACK",family="IPv4"}"#.into(), 2.0),
        (r#"hubble_tcp_flags_total{flag="FIN",family="IPv4"}"#.into(), 4.0),
        (r#"hubble_port_distribution_total{protocol="TCP",port="9"}"#.into(), 2.0),
        (r#"hubble_port_distribution_total{protocol="ICMPv4",port="0"}"#.into(), 3.0),
        (
            r#"hubble_flows_to_world_total{protocol="ICMPv4",verdict="FORWARDED",port=""}"#.into(),
            1.0,
        ),
        // httpV2 counts responses and swaps their ends back: the client's namespace is
        // the source, as for the request.
        (
            r#"hubble_http_requests_total{source_namespace="shop",destination_namespace="payments",method="GET",protocol="HTTP/1.1",status="200",reporter="client"}"#.into(),
            1.0,
        ),
        (
            r#"hubble_http_requests_total{source_namespace="shop",destination_namespace="payments",method="GET",protocol="HTTP/1.1",status="404",reporter="client"}"#.into(),
            1.0,
        ),
    ];
    let sample = |text: &str, series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    let text = scrape_until(&node, "the traffic counted", |text| {
        expected.iter().all(|(series, count)| sample(text, series) >= *count)
    });
    for (series, count) in &expected {
        assert_eq!(sample(&text, series), *count, "{series} in\n{text}");
    }
    assert_eq!(
        samples(&text, "hubble_dns_queries_total")
            .iter()
            .filter(|line| line.contains(r#"qtypes="AAAA""#))
            .count(),
        0,
        "ignoreAAAA leaves the AAAA query out:\n{text}"
    );
    assert_eq!(
        total(&text, "hubble_drop_total", &[]),
        1.0,
        "only the rule drops:\n{text}"
    );
    // Every request of the connection to 8080 (is_reply false) counts; replies do not.
    assert!(
        total(&text, "hubble_port_distribution_total", &[r#"port="8080""#]) >= 2.0,
        "{text}"
    );
    assert_eq!(
        total(&text, "hubble_http_request_duration_seconds_count", &[]),
        2.0,
        "{text}"
    );
    promtool_check(&text);

    // Prometheus has scraped the first drop; a second one (a new connection, so not
    // folded into the first by the per-flow drop limit) makes the rate positive.
    wait_for("Prometheus to hold the first drop", Duration::from_secs(20), || {
        prometheus.query("hubble_drop_total")
    });
    dropped_connection(&frontend, &api);
    let top = wait_for("the drop rate", Duration::from_secs(20), || {
        prometheus
            .query("topk(5, sum by (source, destination) (rate(hubble_drop_total[1m])))")
            .filter(|top| top.iter().any(|series| value(series) > 0.0))
    });
    assert_eq!(top.len(), 1, "{top:?}");
    assert_eq!(top[0]["metric"]["source"], "shop/frontend", "{top:?}");
    assert_eq!(top[0]["metric"]["destination"], "payments/api", "{top:?}");
    let by_verdict = wait_for("rates by verdict", Duration::from_secs(20), || {
        prometheus
            .query("sum by (verdict) (rate(hubble_flows_processed_total[1m]))")
            .filter(|rates| rates.iter().all(|series| value(series) > 0.0) && rates.len() == 2)
    });
    let mut verdicts: Vec<&str> = by_verdict
        .iter()
        .filter_map(|series| series["metric"]["verdict"].as_str())
        .collect();
    verdicts.sort_unstable();
    assert_eq!(verdicts, ["DROPPED", "FORWARDED"], "{by_verdict:?}");
    drop(dns);
}
