//! The `sightline-operator` binary against an API server over HTTP: it takes the
//! Lease, issues the certificates and writes the configuration, reports Ready,
//! serves metrics, restores a deleted Secret and follows a spec change from watch
//! events, and on SIGTERM releases the Lease and exits 0.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::fake_api::FakeApi;
use support::http_api::{kubeconfig, serve};
use support::rbac::assert_documented_rbac_grants;

const NS: &str = "sightline";
const CONFIG: &str = "apis/sightline.dev/v1alpha1/sightlineconfigs/default";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn eventually(what: &str, within: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reconciles_while_leading_and_hands_over_on_sigterm() {
    let api = FakeApi::default();
    api.insert(
        "api/v1/nodes/n1",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {}}}),
    );
    api.insert(
        CONFIG,
        json!({"apiVersion": "sightline.dev/v1alpha1", "kind": "SightlineConfig",
               "metadata": {"name": "default", "generation": 1, "uid": "u-1"},
               "spec": {"agent": {"monitorAggregation": "low"},
                        "nodeOverrides": [{"nodeSelector": {"pool": "gpu"}, "agent": {"interfaces": ["ib*"]}}]}}),
    );
    let address = serve(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("kubeconfig");
    std::fs::write(&config_path, kubeconfig(address)).unwrap();
    let metrics_port = free_port();

    let mut child = Command::new(env!("CARGO_BIN_EXE_sightline-operator"))
        .args(["--namespace", NS, "--identity", "operator-0", "--lease-duration", "3s"])
        .arg("--kubeconfig")
        .arg(&config_path)
        .args(["--metrics-address", &format!("127.0.0.1:{metrics_port}")])
        .env_remove("RUST_BACKTRACE")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    eventually("the operator reports Ready", Duration::from_secs(30), || {
        api.get(CONFIG).is_some_and(|object| {
            object["status"]["conditions"]
                .as_array()
                .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
        })
    })
    .await;
    let lease = format!("apis/coordination.k8s.io/v1/namespaces/{NS}/leases/sightline-operator");
    assert_eq!(api.get(&lease).unwrap()["spec"]["holderIdentity"], "operator-0");
    assert!(
        api.get(&format!("api/v1/namespaces/{NS}/secrets/hubble-server-certs"))
            .is_some()
    );
    let config = api
        .get(&format!("api/v1/namespaces/{NS}/configmaps/sightline-agent-config"))
        .unwrap();
    assert!(
        config["data"]["config.yaml"]
            .as_str()
            .unwrap()
            .contains("monitor-aggregation: low")
    );

    let metrics = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
        use std::io::{Read, Write};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap();
    assert!(metrics.contains("sightline_operator_leader 1"), "{metrics}");
    assert!(
        metrics.contains("sightline_tls_certificate_not_after_seconds{secret=\"sightline-cli-certs\"}"),
        "{metrics}"
    );

    // Self-healing and live configuration, driven by watch events.
    let secret = format!("api/v1/namespaces/{NS}/secrets/hubble-server-certs");
    let old = api.remove(&secret).unwrap();
    eventually("the deleted Secret is restored", Duration::from_secs(15), || {
        api.get(&secret)
            .is_some_and(|restored| restored["metadata"]["uid"] != old["metadata"]["uid"])
    })
    .await;
    // A node joining the override's pool gets its profile, from the Node watch alone.
    let configmap = format!("api/v1/namespaces/{NS}/configmaps/sightline-agent-config");
    let profiles = api.get(&configmap).unwrap()["data"]["node-profiles.yaml"].clone();
    assert!(!profiles.as_str().unwrap().contains("n1"), "{profiles}");
    api.insert(
        "api/v1/nodes/n1",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"pool": "gpu"}}}),
    );
    eventually("the relabelled node gets the override", Duration::from_secs(15), || {
        api.get(&configmap).is_some_and(|cm| {
            cm["data"]["node-profiles.yaml"]
                .as_str()
                .is_some_and(|profiles| profiles.contains("n1"))
        })
    })
    .await;

    let mut object = api.get(CONFIG).unwrap();
    object["spec"]["agent"]["monitorAggregation"] = json!("maximum");
    object["metadata"]["generation"] = json!(2);
    api.insert(CONFIG, object);
    eventually(
        "the new spec reaches the agent ConfigMap",
        Duration::from_secs(15),
        || {
            api.get(&configmap).is_some_and(|cm| {
                cm["data"]["config.yaml"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("monitor-aggregation: maximum")
                    && cm["data"]["generation"] == "2"
            })
        },
    )
    .await;

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the operator did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        api.get(&lease).unwrap()["spec"]["holderIdentity"].is_null(),
        "the Lease was released for a standby"
    );
    // Watches, the leader Lease, Events, reads and writes: a real API server with the
    // documented roles would have refused none of them.
    let requests = api.requests();
    for watched in ["sightlineconfigs", "configmaps", "secrets", "nodes"] {
        assert!(
            requests.iter().any(|r| r.starts_with("WATCH ") && r.ends_with(watched)),
            "no watch of {watched}: {requests:#?}"
        );
    }
    assert_documented_rbac_grants(&requests, NS);
}
