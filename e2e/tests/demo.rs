//! The README demo, run the way `scripts/demo --once` runs it (debug binaries here).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, get_flows_response::ResponseTypes};

fn sibling(binary: &str) -> PathBuf {
    let demo = PathBuf::from(env!("CARGO_BIN_EXE_sightline-demo"));
    demo.with_file_name(binary)
}

/// `kind/name` of every workload on the flows the relay holds, polled until all four
/// demo workloads appear or `within` passes.
async fn workloads_seen(address: &str, within: Duration) -> BTreeSet<String> {
    let deadline = Instant::now() + within;
    let mut seen = BTreeSet::new();
    while Instant::now() < deadline && seen.len() < 4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{address}")) else {
            break;
        };
        let Ok(channel) = endpoint.connect().await else {
            continue;
        };
        let request = GetFlowsRequest {
            number: 500,
            ..Default::default()
        };
        let Ok(response) = ObserverClient::new(channel).get_flows(request).await else {
            continue;
        };
        let mut stream = response.into_inner();
        while let Ok(Some(message)) = stream.message().await {
            if let Some(ResponseTypes::Flow(flow)) = message.response_types {
                for endpoint in [flow.source, flow.destination].into_iter().flatten() {
                    seen.extend(endpoint.workloads.iter().map(|w| format!("{}/{}", w.kind, w.name)));
                }
            }
        }
    }
    seen
}

#[test]
fn demo_once_prints_flows_from_both_nodes_through_the_relay() {
    let (agent, relay) = (sibling("sightline-agent"), sibling("sightline-relay"));
    assert!(
        agent.exists() && relay.exists(),
        "agent and relay binaries are built beside the demo"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let relay_address = format!("127.0.0.1:{port}");
    let demo = Command::new(env!("CARGO_BIN_EXE_sightline-demo"))
        .args(["--once", "--duration", "6s", "--relay-address", &relay_address])
        .arg("--agent")
        .arg(&agent)
        .arg("--relay")
        .arg(&relay)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo runs");
    // While the demo runs, ask its relay the way `hubble observe -o json` would.
    let workloads = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(workloads_seen(&relay_address, Duration::from_secs(6)));
    let output = demo.wait_with_output().expect("demo exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");

    // Flows through the relay name the workloads from the demo's manifests.
    for expected in [
        "Deployment/frontend",
        "Deployment/backend",
        "Deployment/coredns",
        "StatefulSet/db",
    ] {
        assert!(workloads.contains(expected), "{expected} not among {workloads:?}");
    }

    let has = |needle: &str| stdout.lines().any(|line| line.contains(needle));
    assert!(has("NODE_CONNECTED: node-a, node-b"), "{stdout}");
    // Kubernetes names from the demo's manifests: pods with namespaces, identities.
    assert!(has("shop/frontend-7d4b9c6f5-q2x8l:"), "flows carry pod names: {stdout}");
    assert!(has("-> kube-system/coredns-6f9c8d7b5-h4k2n:53 (ID:"), "{stdout}");
    assert!(has("-> shop/db-0 (ID:"), "{stdout}");
    // HTTP frontend (node-a) -> backend (node-b): seen leaving one node and entering the other.
    let backend = "shop/backend-5c8d7b9f4-m7p3z";
    assert!(has(&format!("-> {backend}:8080 (ID:")), "{stdout}");
    let has_both = |a: &str, b: &str| stdout.lines().any(|line| line.contains(a) && line.contains(b));
    assert!(
        has_both(":8080 (ID:", "from-endpoint FORWARDED (TCP Flags: SYN)"),
        "{stdout}"
    );
    assert!(
        has_both(":8080 (ID:", "to-endpoint FORWARDED (TCP Flags: SYN)"),
        "{stdout}"
    );
    assert!(
        has_both(":8080 (ID:", "from-endpoint FORWARDED (TCP Flags: SYN, ACK)"),
        "{stdout}"
    );
    assert!(
        has("dns-request FORWARDED (DNS Query backend.shop.svc.cluster.local. A)"),
        "{stdout}"
    );
    assert!(has("dns-response FORWARDED (DNS Answer"), "{stdout}");
    assert!(has("FORWARDED (ICMPv4 EchoRequest)"), "{stdout}");
    assert!(has("FORWARDED (ICMPv4 EchoReply)"), "{stdout}");
    // ping(8) reads replies on a raw socket; the kernel still frees them as NO_SOCKET.
    assert!(
        !has("DROPPED (ICMPv4 EchoReply"),
        "a successful ping shown as dropped: {stdout}"
    );
    assert!(
        has_both(
            &format!("{backend}:9000 (ID:"),
            "policy-denied DROPPED (TCP Flags: SYN (kernel drop reason: NETFILTER_DROP))"
        ),
        "{stdout}"
    );

    // Nothing the demo created is left behind.
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("sl-demo0"),
        "demo bridge left behind"
    );
}
