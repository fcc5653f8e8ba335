//! Wire compatibility with a Hubble client that shares nothing with Sightline:
//! `e2e/interop/hubble_client.py` speaks gRPC through gRPC's C core and decodes with
//! Python protobuf and the published Hubble descriptor set. Two agent processes
//! serve mutual TLS the way Cilium deploys Hubble; a relay process discovers them
//! through the peer service and serves the cluster.

mod binaries;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use binaries::{binary, free_port};
use serde_json::Value;
use sightline_e2e::demo::{Pki, Process};

/// The published Hubble API (v1.19.4), where `proto/tests/wire_compat.rs` finds it.
fn descriptors() -> PathBuf {
    std::env::var_os("SIGHTLINE_HUBBLE_API_DESCRIPTOR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/hubble-api/hubble-api.binpb"),
        PathBuf::from,
    )
}

/// Runs the Python client against `target` and returns each call's JSON line.
fn hubble_client(target: &str, tls: &[(&str, &Path)], server_name: Option<&str>, calls: &[&str]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/hubble_client.py");
    let mut command = Command::new("/usr/bin/python3");
    command.arg(script).arg(descriptors()).arg(target);
    for (flag, path) in tls {
        command.arg(format!("--{flag}")).arg(path);
    }
    if let Some(name) = server_name {
        command.args(["--server-name", name]);
    }
    let output = command
        .args(calls)
        .output()
        .expect("python3 runs (scripts/setup installs python3-grpcio and python3-protobuf)");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), calls.len(), "{lines:?}");
    lines
}

fn ok<'a>(line: &'a Value, call: &str) -> &'a Value {
    assert_eq!(line["call"], call);
    line.get("ok").unwrap_or_else(|| panic!("{call} failed: {line}"))
}

struct Cluster {
    dir: PathBuf,
    pki: Pki,
    agent_ports: Vec<u16>,
    relay_port: u16,
    _processes: Vec<Process>,
}

impl Cluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("sightline-interop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pki = Pki::write(&dir).expect("certificates");
        let agent_ports = vec![free_port(), free_port()];
        let peers = agent_ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("node-{i}=127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut processes = Vec::new();
        for (i, port) in agent_ports.iter().enumerate() {
            let mut agent = Command::new(binary("sightline-agent"));
            agent
                .args(["--node-name", &format!("node-{i}")])
                .args(["--listen-address", &format!("127.0.0.1:{port}")])
                .arg("--socket-path")
                .arg(dir.join(format!("node-{i}.sock")))
                .args(["--peers", &peers, "--synthetic-flows-per-second", "500"])
                .arg("--tls-cert-file")
                .arg(&pki.agent_cert)
                .arg("--tls-key-file")
                .arg(&pki.agent_key)
                .arg("--tls-client-ca-files")
                .arg(&pki.ca);
            processes.push(Process::spawn(&format!("node-{i}"), agent, &dir).expect("agent starts"));
        }
        let relay_port = free_port();
        let mut relay = Command::new(binary("sightline-relay"));
        relay
            .args(["--listen-address", &format!("127.0.0.1:{relay_port}")])
            .args(["--disable-server-tls", "--health-listen-address", ""])
            .args(["--metrics-listen-address", "", "--retry-timeout", "1s"])
            .args(["--peer-service", &format!("127.0.0.1:{}", agent_ports[0])])
            .arg("--tls-hubble-server-ca-files")
            .arg(&pki.ca)
            .arg("--tls-hubble-client-cert-file")
            .arg(&pki.relay_cert)
            .arg("--tls-hubble-client-key-file")
            .arg(&pki.relay_key);
        processes.push(Process::spawn("relay", relay, &dir).expect("relay starts"));
        Self {
            dir,
            pki,
            agent_ports,
            relay_port,
            _processes: processes,
        }
    }

    /// The relay's client identity: what hubble-relay presents to agents.
    fn agent_calls(&self, node: usize, calls: &[&str]) -> Vec<Value> {
        let tls: [(&str, &Path); 3] = [
            ("ca", &self.pki.ca),
            ("cert", &self.pki.relay_cert),
            ("key", &self.pki.relay_key),
        ];
        hubble_client(
            &format!("127.0.0.1:{}", self.agent_ports[node]),
            &tls,
            Some(&format!("node-{node}.default.hubble-grpc.cilium.io")),
            calls,
        )
    }

    fn relay_calls(&self, calls: &[&str]) -> Vec<Value> {
        hubble_client(&format!("127.0.0.1:{}", self.relay_port), &[], None, calls)
    }

    /// Waits until the relay has both agents connected.
    fn wait_for_relay(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = &self.relay_calls(&["status"])[0];
            if status["ok"]["numConnectedNodes"] == 2 {
                return;
            }
            assert!(Instant::now() < deadline, "relay never connected both agents: {status}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn flows(responses: &Value) -> Vec<&Value> {
    responses
        .as_array()
        .expect("a stream")
        .iter()
        .filter_map(|r| r.get("flow"))
        .collect()
}

/// A flow's RFC 3339 time (always UTC, 'Z') with the fraction padded to nine
/// digits: protobuf's JSON form drops trailing zero groups, which breaks text order.
fn sortable_time(flow: &Value) -> String {
    let text = flow["time"].as_str().expect("time");
    let (seconds, fraction) = text
        .trim_end_matches('Z')
        .split_once('.')
        .unwrap_or((text.trim_end_matches('Z'), ""));
    format!("{seconds}.{fraction:0<9}Z")
}

#[test]
fn a_grpc_core_client_with_the_published_descriptors_reads_agents_and_relay() {
    assert!(descriptors().exists(), "{} missing", descriptors().display());
    let cluster = Cluster::start();
    // Agents produce 500 flows/s; give the rings some history.
    std::thread::sleep(Duration::from_secs(1));

    let agent = cluster.agent_calls(
        0,
        &[
            "status",
            "flows:20",
            "follow:5",
            "peers:2",
            "nodes",
            "namespaces",
            "bad-filter",
        ],
    );
    let status = ok(&agent[0], "status");
    assert!(
        status["version"].as_str().unwrap_or("").starts_with("sightline v"),
        "{status}"
    );
    assert_eq!(status["maxFlows"], "4095", "uint64 fields are JSON strings");
    assert!(
        status["numFlows"]
            .as_str()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
            > 0
    );

    let last_twenty = ok(&agent[1], "flows:20");
    let listed = flows(last_twenty);
    assert_eq!(listed.len(), 20, "number = 20 on one agent");
    let mut previous = String::new();
    for (response, flow) in last_twenty.as_array().unwrap().iter().zip(&listed) {
        assert_eq!(response["nodeName"], "node-0");
        assert_eq!(flow["nodeName"], "node-0");
        let time = sortable_time(flow);
        assert!(time >= previous, "{time} after {previous}");
        previous = time;
        assert!(
            flow["source"]["podName"].as_str().is_some_and(|p| !p.is_empty()),
            "{flow}"
        );
        assert!(flow["l4"]["TCP"]["destinationPort"].as_u64().is_some(), "{flow}");
        assert!(["FORWARDED", "DROPPED"].contains(&flow["verdict"].as_str().unwrap_or("")));
        assert_eq!(flow["Type"], "L3_L4");
    }
    assert_eq!(
        flows(ok(&agent[2], "follow:5")).len(),
        5,
        "follow streams until the client cancels"
    );

    let peers = ok(&agent[3], "peers:2").as_array().expect("notifications").clone();
    let mut names: Vec<(String, String, String)> = peers
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_owned(),
                p["type"].as_str().unwrap_or("").to_owned(),
                p["tls"]["serverName"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [0, 1]
            .map(|i| (
                format!("node-{i}"),
                "PEER_ADDED".to_owned(),
                format!("node-{i}.default.hubble-grpc.cilium.io")
            ))
            .to_vec()
    );
    assert_eq!(ok(&agent[4], "nodes")["nodes"][0]["name"], "node-0");
    let namespaces = ok(&agent[5], "namespaces")["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!namespaces.is_empty());
    assert_eq!(agent[6]["error"], "INVALID_ARGUMENT", "{}", agent[6]);
    assert!(
        agent[6]["details"].as_str().unwrap_or("").contains("not-a-port"),
        "{}",
        agent[6]
    );

    // A client without a certificate from the cluster CA is turned away.
    let anonymous = hubble_client(
        &format!("127.0.0.1:{}", cluster.agent_ports[1]),
        &[("ca", &cluster.pki.ca)],
        Some("node-1.default.hubble-grpc.cilium.io"),
        &["status"],
    );
    assert_eq!(anonymous[0]["error"], "UNAVAILABLE", "{}", anonymous[0]);

    cluster.wait_for_relay();
    let relay = cluster.relay_calls(&["flows:40", "nodes", "status", "namespaces"]);
    let merged = ok(&relay[0], "flows:40").as_array().expect("a stream").clone();
    let first = &merged[0]["nodeStatus"];
    assert_eq!(first["stateChange"], "NODE_CONNECTED", "{}", merged[0]);
    let mut connected: Vec<&str> = first["nodeNames"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    connected.sort();
    assert_eq!(connected, ["node-0", "node-1"]);
    let merged_flows = flows(ok(&relay[0], "flows:40"));
    assert_eq!(merged_flows.len(), 40, "number = 40 across the cluster");
    let times: Vec<String> = merged_flows.iter().map(|f| sortable_time(f)).collect();
    assert!(times.is_sorted(), "merged by time: {times:?}");
    let nodes: std::collections::BTreeSet<&str> = merged_flows.iter().filter_map(|f| f["nodeName"].as_str()).collect();
    assert_eq!(nodes.into_iter().collect::<Vec<_>>(), ["node-0", "node-1"]);

    let listed_nodes = ok(&relay[1], "nodes")["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed_nodes.len(), 2, "{listed_nodes:?}");
    for node in &listed_nodes {
        assert_eq!(node["state"], "NODE_CONNECTED", "{node}");
        assert_eq!(node["tls"]["enabled"], true, "{node}");
    }
    assert_eq!(ok(&relay[2], "status")["numConnectedNodes"], 2);
    assert!(
        !ok(&relay[3], "namespaces")["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .is_empty()
    );
}
