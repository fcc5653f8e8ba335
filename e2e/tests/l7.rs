//! L7 flows from packets on the real kernel: real clients and servers in two pods, the
//! programs capturing payload on the selected connections, the parsers turning it into
//! Hubble `l7` flows. Run as root.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sightline_agent::datapath::{AggregationLevel, DatapathArgs};
use sightline_agent::flow_record::FlowRecord;
use sightline_agent::observer::filter::FilterSet;
use sightline_e2e::{Node, Pod};
use sightline_proto::flow::{
    Flow, FlowFilter, FlowType, Http, HttpHeader, L7FlowType, TrafficDirection, Verdict, layer7,
};
use support::{Agent, args, is_reply, ports, summary, two_pods};

/// A process killed and reaped however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn l7_args(ports: &str, detect: bool) -> DatapathArgs {
    let mut settings = args(AggregationLevel::Medium);
    settings.l7.l7_ports = ports.to_owned();
    settings.l7.l7_detect = detect;
    settings
}

fn start_l7(node: &Node, settings: DatapathArgs, pods: &[&Pod]) -> Agent {
    let names: Vec<&str> = pods.iter().map(|p| p.host_veth.as_str()).collect();
    Agent::start(node, settings, &names)
}

/// Waits until `address` accepts connections from `client`'s namespace.
fn wait_listening(client: &Pod, address: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = client
            .netns
            .run(move || std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok())
            .expect("ns");
        if up {
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Python's `http.server`, answering `/ok` 200, `/missing` 404 and `/boom` 500 with
/// keep-alive (HTTP/1.1 and a Content-Length).
const HTTP_SERVER: &str = r#"
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = {"/ok": 200, "/missing": 404, "/boom": 500}.get(self.path.split("?")[0], 200)
        body = b"body of " + self.path.encode() + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"#;

fn http_server(pod: &Pod, port: u16) -> Running {
    let child = pod
        .netns
        .command("python3")
        .args(["-c", HTTP_SERVER, &pod.ipv4.to_string(), &port.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    Running(child)
}

/// curl fetching every URL over one keep-alive connection; returns the status codes.
fn curl(client: &Pod, urls: &[String]) -> String {
    let mut command: Command = client.netns.command("curl");
    command.args(["-sS", "--max-time", "5", "-H", "X-Request-Id: 7f3a"]);
    for url in urls {
        command.args(["-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n", url]);
    }
    let output = command.output().expect("curl");
    assert!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn is_l7(flow: &Flow) -> bool {
    flow.r#type == FlowType::L7 as i32
}

fn http_of(flow: &Flow) -> Http {
    match flow.l7.as_ref().and_then(|l| l.record.as_ref()) {
        Some(layer7::Record::Http(http)) => http.clone(),
        other => panic!("not HTTP: {other:?}"),
    }
}

fn l7_type(flow: &Flow) -> Option<i32> {
    flow.l7.as_ref().map(|l| l.r#type)
}

fn latency(flow: &Flow) -> u64 {
    flow.l7.as_ref().map_or(0, |l| l.latency_ns)
}

fn source_ip(flow: &Flow) -> String {
    flow.ip.as_ref().map(|ip| ip.source.clone()).unwrap_or_default()
}

/// What the metrics handlers `handlers` (as `--metrics` lists them) count for `flows`,
/// as sample lines of the scrape, sorted.
fn metrics(handlers: &str, flows: &[Flow], metric: &str) -> Vec<String> {
    use sightline_agent::metrics::{FlowFamilies, FlowMetrics, options::parse_list};
    let specs = parse_list(&[handlers]).expect("valid handlers");
    let mut counted = FlowMetrics::new(&specs, 10_000).expect("handlers");
    for flow in flows {
        counted.process(&FlowRecord::new(flow.clone()));
    }
    let families = FlowFamilies::default();
    families.replace(counted.collectors());
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(families));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with(&format!("{metric}{{")))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// The flows the GetFlows filter `filter` lets through.
fn selected(flows: &[Flow], filter: FlowFilter) -> Vec<&Flow> {
    let set = FilterSet::compile(&[filter], &[]).expect("valid filter");
    flows
        .iter()
        .filter(|f| set.matches_flow(&FlowRecord::new((*f).clone())))
        .collect()
}

#[test]
fn http_keep_alive_requests_and_responses_become_l7_flows() {
    let (node, client, server) = two_pods();
    let settings = l7_args("http=8080", false);
    let l7_stats = std::sync::Arc::clone(&settings.l7.stats);
    let agent = start_l7(&node, settings, &[&client, &server]);
    let _server_process = http_server(&server, 8080);
    let address = SocketAddr::from((server.ipv4, 8080));
    wait_listening(&client, address);
    let base = format!("http://{}:8080", server.ipv4);
    let urls = [
        format!("{base}/ok"),
        format!("{base}/missing?token=secret"),
        format!("{base}/boom"),
    ];
    let statuses = curl(&client, &urls);
    // One connection for all three: the first request connects, the others reuse it.
    assert_eq!(statuses, "200 1\n404 0\n500 0\n");

    agent.wait_for(is_l7, |f| f.len() >= 6);
    // Give a duplicate (from the server's veth on this same node) time to show up.
    std::thread::sleep(Duration::from_millis(300));
    let flows: Vec<Flow> = agent.flows().into_iter().filter(is_l7).collect();
    assert_eq!(flows.len(), 6, "{flows:#?}");

    let (requests, responses): (Vec<&Flow>, Vec<&Flow>) = flows
        .iter()
        .partition(|f| l7_type(f) == Some(L7FlowType::Request as i32));
    assert_eq!(requests.len(), 3, "{flows:#?}");
    let expected_urls = [format!("{base}/ok"), format!("{base}/missing"), format!("{base}/boom")];
    for (request, url) in requests.iter().zip(&expected_urls) {
        let http = http_of(request);
        assert_eq!(
            (http.method.as_str(), http.url.as_str(), http.protocol.as_str()),
            ("GET", url.as_str(), "HTTP/1.1")
        );
        assert_eq!(http.code, 0);
        assert!(
            http.headers.contains(&HttpHeader {
                key: "X-Request-Id".into(),
                value: "7f3a".into()
            }),
            "{:?}",
            http.headers
        );
        assert_eq!(summary(request), format!("HTTP/1.1 GET {url}"));
        assert_eq!(is_reply(request), Some(false));
        assert_eq!(source_ip(request), client.ipv4.to_string());
        assert_eq!(ports(request).map(|p| p.1), Some(8080));
        assert_eq!(request.event_type.as_ref().map(|e| e.r#type), Some(129));
        assert_eq!(request.traffic_direction, TrafficDirection::Egress as i32);
        assert_eq!(request.verdict, Verdict::Forwarded as i32);
        assert_eq!(request.interface.as_ref().map(|i| i.index), Some(client.host_ifindex));
        assert_eq!(latency(request), 0);
    }

    for (response, (code, url)) in responses.iter().zip([200, 404, 500].into_iter().zip(&expected_urls)) {
        let http = http_of(response);
        assert_eq!(
            (http.code, http.method.as_str(), http.url.as_str()),
            (code, "GET", url.as_str())
        );
        assert!(
            http.headers
                .iter()
                .any(|h| h.key == "Content-Type" && h.value == "text/plain")
        );
        let took = latency(response);
        assert!(took > 0 && took < 1_000_000_000, "latency {took}");
        assert_eq!(
            summary(response),
            format!("HTTP/1.1 {code} {}ms (GET {url})", took / 1_000_000)
        );
        assert_eq!(is_reply(response), Some(true));
        assert_eq!(source_ip(response), server.ipv4.to_string());
        assert_eq!(ports(response).map(|p| p.0), Some(8080));
        assert_eq!(response.traffic_direction, TrafficDirection::Egress as i32);
    }

    // GetFlows filters over the real flows.
    let l7_events = || {
        vec![sightline_proto::flow::EventTypeFilter {
            r#type: 129,
            ..Default::default()
        }]
    };
    let codes = |flows: Vec<&Flow>| -> Vec<u32> { flows.iter().map(|f| http_of(f).code).collect() };
    let errors = selected(
        &flows,
        FlowFilter {
            http_status_code: vec!["5+".into()],
            event_type: l7_events(),
            ..Default::default()
        },
    );
    assert_eq!(codes(errors), [500]);
    let not_found = selected(
        &flows,
        FlowFilter {
            http_status_code: vec!["404".into()],
            ..Default::default()
        },
    );
    assert_eq!(codes(not_found), [404]);
    let gets = selected(
        &flows,
        FlowFilter {
            http_method: vec!["get".into()],
            ..Default::default()
        },
    );
    assert_eq!(gets.len(), 6);
    let missing = selected(
        &flows,
        FlowFilter {
            http_path: vec!["^/miss".into()],
            ..Default::default()
        },
    );
    assert_eq!(missing.len(), 2);
    let by_url = selected(
        &flows,
        FlowFilter {
            http_url: vec![format!("{}:8080/boom$", server.ipv4)],
            ..Default::default()
        },
    );
    assert_eq!(by_url.len(), 2);
    let by_header = selected(
        &flows,
        FlowFilter {
            http_header: vec![HttpHeader {
                key: "X-Request-Id".into(),
                value: "7f3a".into(),
            }],
            ..Default::default()
        },
    );
    assert_eq!(by_header.len(), 3);
    let http = selected(
        &flows,
        FlowFilter {
            protocol: vec!["http".into()],
            ..Default::default()
        },
    );
    assert_eq!(http.len(), 6);
    let kafka = selected(
        &flows,
        FlowFilter {
            protocol: vec!["kafka".into()],
            ..Default::default()
        },
    );
    assert!(kafka.is_empty());

    // The metrics handlers count them: v1 per request and per response, v2 per response.
    assert_eq!(
        metrics("http", &flows, "hubble_http_requests_total"),
        ["hubble_http_requests_total{method=\"GET\",protocol=\"HTTP/1.1\",reporter=\"client\"} 3"]
    );
    assert_eq!(
        metrics("httpV2", &flows, "hubble_http_requests_total"),
        [
            "hubble_http_requests_total{method=\"GET\",protocol=\"HTTP/1.1\",status=\"200\",reporter=\"client\"} 1",
            "hubble_http_requests_total{method=\"GET\",protocol=\"HTTP/1.1\",status=\"404\",reporter=\"client\"} 1",
            "hubble_http_requests_total{method=\"GET\",protocol=\"HTTP/1.1\",status=\"500\",reporter=\"client\"} 1",
        ]
    );

    // The agent's own L7 counters, as /metrics shows them: the kernel's capture counter
    // (refreshed every second) saw at least the six segments with a head, the parsers
    // produced six records and gave up on nothing.
    let deadline = Instant::now() + Duration::from_secs(5);
    while l7_stats.capture().captured < 6 {
        assert!(Instant::now() < deadline, "capture counters: {:?}", l7_stats.capture());
        std::thread::sleep(Duration::from_millis(100));
    }
    let scrape = l7_scrape(&l7_stats);
    assert!(
        scrape.contains(&"sightline_l7_records_total{protocol=\"http1\"} 6".to_owned()),
        "{scrape:#?}"
    );
    let captured: u64 = scrape
        .iter()
        .find_map(|line| line.strip_prefix("sightline_l7_captured_segments_total "))
        .and_then(|value| value.parse().ok())
        .expect("captured segments in the scrape");
    assert!(captured >= 6, "{scrape:#?}");
    let http1_errors: Vec<&String> = scrape
        .iter()
        .filter(|line| line.starts_with("sightline_l7_parse_errors_total{protocol=\"http1\""))
        .collect();
    assert_eq!(http1_errors.len(), 10, "{scrape:#?}");
    assert!(http1_errors.iter().all(|line| line.ends_with(" 0")), "{scrape:#?}");
    assert!(
        scrape.contains(&"sightline_l7_capture_errors_total{reason=\"copy_failed\"} 0".to_owned()),
        "{scrape:#?}"
    );
    support::stop_and_check_detached(agent, &node, &[&client, &server]);
}

/// The sample lines of the agent's `sightline_l7_*` families, as a scrape shows them.
fn l7_scrape(stats: &std::sync::Arc<sightline_agent::l7::L7Stats>) -> Vec<String> {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(sightline_agent::metrics::l7::L7Collector::new(
        std::sync::Arc::clone(stats),
    )));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
    text.lines()
        .filter(|line| line.starts_with("sightline_l7_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn http_on_an_unconfigured_port_is_found_by_content_with_detection_on() {
    let (node, client, server) = two_pods();
    // Ports name another protocol only: the connection to 8081 is picked by detection.
    let agent = start_l7(&node, l7_args("kafka=9092", true), &[&client, &server]);
    let _server_process = http_server(&server, 8081);
    let address = SocketAddr::from((server.ipv4, 8081));
    wait_listening(&client, address);
    let url = format!("http://{}:8081/missing", server.ipv4);
    assert_eq!(curl(&client, std::slice::from_ref(&url)), "404 1\n");
    let flows = agent.wait_for(is_l7, |f| f.len() >= 2);
    assert_eq!(flows.len(), 2, "{flows:#?}");
    assert_eq!(summary(&flows[0]), format!("HTTP/1.1 GET {url}"));
    assert_eq!(http_of(&flows[1]).code, 404);
    support::stop_and_check_detached(agent, &node, &[&client, &server]);
}

#[test]
fn without_l7_flags_http_gives_no_l7_flows() {
    let (node, client, server) = two_pods();
    let agent = start_l7(&node, l7_args("", false), &[&client, &server]);
    let _server_process = http_server(&server, 8080);
    let address = SocketAddr::from((server.ipv4, 8080));
    wait_listening(&client, address);
    assert_eq!(curl(&client, &[format!("http://{}:8080/ok", server.ipv4)]), "200 1\n");
    // The connection itself is seen (L3/L4), its payload is not parsed.
    let traces = agent.wait_for(|f| ports(f).is_some_and(|p| p.1 == 8080), |f| !f.is_empty());
    assert!(!traces.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.flows().iter().all(|f| !is_l7(f)));
    support::stop_and_check_detached(agent, &node, &[&client, &server]);
}

/// A tonic gRPC server (the standard health service) in `pod`, until the sender is dropped.
fn grpc_server(pod: &Pod, port: u16) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let address = SocketAddr::from((pod.ipv4, port));
    pod.netns
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let (_reporter, service) = tonic_health::server::health_reporter();
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_shutdown(address, async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("gRPC server");
            });
        })
        .expect("server thread");
    stop
}

/// Two unary calls on one HTTP/2 connection: a served service and an unknown one
/// (gRPC status NOT_FOUND, 5). Returns the two gRPC codes.
fn grpc_calls(client: &Pod, server: SocketAddr) -> (i32, i32) {
    client
        .netns
        .run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let channel = tonic::transport::Endpoint::from_shared(format!("http://{server}"))
                    .expect("endpoint")
                    .connect()
                    .await
                    .expect("connect");
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let served = health
                    .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
                    .await
                    .map_or_else(|status| status.code() as i32, |_| 0);
                let unknown = health
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: "no.such.Service".into(),
                    })
                    .await
                    .map_or_else(|status| status.code() as i32, |_| 0);
                (served, unknown)
            })
        })
        .expect("ns")
}

/// Header names are canonicalised as Go's `net/http` does (`Grpc-Status`), as Hubble shows them.
fn header<'a>(http: &'a Http, key: &str) -> Option<&'a str> {
    http.headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(key))
        .map(|h| h.value.as_str())
}

#[test]
fn grpc_calls_become_http2_flows_with_grpc_status() {
    let (node, client, server) = two_pods();
    let settings = l7_args("grpc=50051", false);
    let l7_stats = std::sync::Arc::clone(&settings.l7.stats);
    let agent = start_l7(&node, settings, &[&client, &server]);
    let _server = grpc_server(&server, 50051);
    let address = SocketAddr::from((server.ipv4, 50051));
    wait_listening(&client, address);
    assert_eq!(grpc_calls(&client, address), (0, 5));

    agent.wait_for(is_l7, |f| f.len() >= 4);
    std::thread::sleep(Duration::from_millis(300));
    let flows: Vec<Flow> = agent.flows().into_iter().filter(is_l7).collect();
    // On a miss, the counters say where the parser gave up (and the trace flows what the capture saw).
    let traces: Vec<String> = agent
        .flows()
        .iter()
        .filter(|f| ports(f).is_some_and(|p| p.0 == 50051 || p.1 == 50051))
        .map(|f| format!("{:?} {:?}", f.l4, f.is_reply))
        .collect();
    assert_eq!(
        flows.len(),
        4,
        "{flows:#?}\nL7 counters: {:#?}\ncapture: {:?}\nL4 flows: {traces:#?}",
        l7_scrape(&l7_stats)
            .into_iter()
            .filter(|l| !l.ends_with(" 0"))
            .collect::<Vec<_>>(),
        l7_stats.capture()
    );
    let (requests, responses): (Vec<&Flow>, Vec<&Flow>) = flows
        .iter()
        .partition(|f| l7_type(f) == Some(L7FlowType::Request as i32));
    assert_eq!((requests.len(), responses.len()), (2, 2), "{flows:#?}");
    let url = format!("http://{address}/grpc.health.v1.Health/Check");
    for request in &requests {
        let http = http_of(request);
        assert_eq!(
            (http.method.as_str(), http.url.as_str(), http.protocol.as_str()),
            ("POST", url.as_str(), "HTTP/2")
        );
        assert_eq!(header(&http, "content-type"), Some("application/grpc"), "{http:?}");
        assert_eq!(summary(request), format!("HTTP/2 POST {url}"));
        assert_eq!(is_reply(request), Some(false));
        assert_eq!(source_ip(request), client.ipv4.to_string());
    }
    let statuses: Vec<Option<String>> = responses
        .iter()
        .map(|r| header(&http_of(r), "grpc-status").map(str::to_owned))
        .collect();
    assert_eq!(statuses, [Some("0".to_owned()), Some("5".to_owned())]);
    for response in &responses {
        let http = http_of(response);
        assert_eq!(
            (http.code, http.protocol.as_str(), http.url.as_str()),
            (200, "HTTP/2", url.as_str())
        );
        let took = latency(response);
        assert!(took > 0 && took < 1_000_000_000, "latency {took}");
        assert_eq!(
            summary(response),
            format!("HTTP/2 200 {}ms (POST {url})", took / 1_000_000)
        );
        assert_eq!(is_reply(response), Some(true));
        assert_eq!(ports(response).map(|p| p.0), Some(50051));
    }
    let grpc_errors = selected(
        &flows,
        FlowFilter {
            http_header: vec![HttpHeader {
                key: "Grpc-Status".into(),
                value: "5".into(),
            }],
            ..Default::default()
        },
    );
    assert_eq!(grpc_errors.len(), 1);
    let by_path = selected(
        &flows,
        FlowFilter {
            http_path: vec!["^/grpc\\.health\\.v1\\.Health/".into()],
            protocol: vec!["http".into()],
            ..Default::default()
        },
    );
    assert_eq!(by_path.len(), 4);
    support::stop_and_check_detached(agent, &node, &[&client, &server]);
}

/// Where the tools venv (`scripts/setup`) keeps kafka-python.
const TOOLS_PYTHON: &str = "/opt/sightline-tools/venv/bin/python";

fn l7_script(name: &str) -> String {
    format!("{}/tests/l7_support/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[allow(deprecated)] // `l7.kafka` is deprecated upstream, and still what Hubble fills.
fn kafka_of(flow: &Flow) -> sightline_proto::flow::Kafka {
    match flow.l7.as_ref().and_then(|l| l.record.as_ref()) {
        Some(layer7::Record::Kafka(kafka)) => kafka.clone(),
        other => panic!("not Kafka: {other:?}"),
    }
}

fn is_kafka_call(flow: &Flow, api_key: &str, kind: L7FlowType) -> bool {
    is_l7(flow) && l7_type(flow) == Some(kind as i32) && kafka_of(flow).api_key == api_key
}

#[test]
fn a_kafka_client_produces_and_fetches_through_l7_flows() {
    let (node, client, server) = two_pods();
    let agent = start_l7(&node, l7_args("kafka=9092", false), &[&client, &server]);
    let broker = server
        .netns
        .command(TOOLS_PYTHON)
        .args([&l7_script("kafka_broker.py"), &server.ipv4.to_string(), "9092"])
        .spawn()
        .expect("Kafka test broker");
    let _broker = Running(broker);
    let address = SocketAddr::from((server.ipv4, 9092));
    wait_listening(&client, address);
    let output = client
        .netns
        .command(TOOLS_PYTHON)
        .args([&l7_script("kafka_client.py"), &address.to_string()])
        .output()
        .expect("kafka-python client");
    assert!(
        output.status.success(),
        "client: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let done = |f: &[Flow]| {
        let has = |key, kind| f.iter().any(|flow| is_kafka_call(flow, key, kind));
        has("produce", L7FlowType::Response) && has("fetch", L7FlowType::Response)
    };
    agent.wait_for(is_l7, done);
    let flows: Vec<Flow> = agent.flows().into_iter().filter(is_l7).collect();
    let of = |key, kind| -> Vec<&Flow> { flows.iter().filter(|f| is_kafka_call(f, key, kind)).collect() };

    let (requests, responses) = (of("produce", L7FlowType::Request), of("produce", L7FlowType::Response));
    assert_eq!((requests.len(), responses.len()), (1, 1), "{flows:#?}");
    let (request, response) = (kafka_of(requests[0]), kafka_of(responses[0]));
    assert_eq!((request.topic.as_str(), request.api_version), ("orders", 6));
    assert_eq!(response.correlation_id, request.correlation_id);
    assert_eq!((response.topic.as_str(), response.error_code), ("orders", 0));
    assert_eq!(
        summary(requests[0]),
        format!(
            "Kafka request produce correlation id {} topic 'orders'",
            request.correlation_id
        )
    );
    assert_eq!(
        summary(responses[0]),
        format!(
            "Kafka response produce correlation id {} topic 'orders' return code 0",
            request.correlation_id
        )
    );
    assert_eq!(is_reply(requests[0]), Some(false));
    assert_eq!(is_reply(responses[0]), Some(true));
    assert_eq!(source_ip(requests[0]), client.ipv4.to_string());
    assert_eq!(ports(responses[0]).map(|p| p.0), Some(9092));
    let took = latency(responses[0]);
    assert!(took > 0 && took < 1_000_000_000, "latency {took}");

    let fetches = of("fetch", L7FlowType::Response);
    assert!(!fetches.is_empty(), "{flows:#?}");
    for fetch in &fetches {
        let kafka = kafka_of(fetch);
        assert_eq!(
            (kafka.topic.as_str(), kafka.api_version, kafka.error_code),
            ("orders", 8, 0)
        );
        // The test broker holds each fetch for the client's max wait (100 ms in kafka_client.py).
        assert!(latency(fetch) >= 90_000_000, "latency {}", latency(fetch));
    }

    let kafka = selected(
        &flows,
        FlowFilter {
            protocol: vec!["kafka".into()],
            ..Default::default()
        },
    );
    assert_eq!(kafka.len(), flows.len());
    assert!(
        selected(
            &flows,
            FlowFilter {
                protocol: vec!["http".into()],
                ..Default::default()
            }
        )
        .is_empty()
    );
    let produced = metrics("kafka", &flows, "hubble_kafka_requests_total");
    assert!(
        produced.iter().any(|line| line.contains("topic=\"orders\"")
            && line.contains("api_key=\"produce\"")
            && line.ends_with(" 1")),
        "{produced:#?}"
    );
    support::stop_and_check_detached(agent, &node, &[&client, &server]);
}
