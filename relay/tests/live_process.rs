//! The relay binary with `--config-map`, as the chart runs it: it finds the API
//! server through its kubeconfig (here `KUBECONFIG`, in a pod the service
//! account), follows the ConfigMap, reports each version on `/metrics` and in its
//! log, and refuses to start when the flag is set but no API server can be found.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Uri;
use axum::routing::get;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::wrappers::WatchStream;

const NAMESPACE: &str = "sightline";
const CONFIG_MAP: &str = "sightline-relay-config";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Kills the relay if the test fails before it ends.
struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config_map(resource_version: u64, config: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE, "resourceVersion": resource_version.to_string()},
        "data": {"config.yaml": config, "generation": resource_version.to_string()}
    })
}

fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

/// The one path the relay may call: list, and watch from a version on, which
/// streams every later version of the ConfigMap as it is published on `latest`.
async fn fake_api(latest: watch::Receiver<Value>) -> SocketAddr {
    let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
    let handler = move |uri: Uri| {
        let latest = latest.clone();
        async move {
            let query = uri.query().unwrap_or_default().to_owned();
            assert!(
                query.contains(&format!("fieldSelector=metadata.name%3D{CONFIG_MAP}")),
                "{uri}"
            );
            if !query.contains("watch=true") {
                let current = latest.borrow().clone();
                let list = json!({"apiVersion": "v1", "kind": "ConfigMapList",
                    "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}, "items": [current]});
                return Body::from(list.to_string());
            }
            let since: u64 = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("resourceVersion="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let events = WatchStream::new(latest)
                .filter(move |object| std::future::ready(resource_version(object) > since))
                .map(|object| {
                    let event = json!({"type": "MODIFIED", "object": object});
                    Ok::<_, std::convert::Infallible>(format!("{event}\n"))
                });
            Body::from_stream(events)
        }
    };
    let app = Router::new().route(&path, get(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

fn kubeconfig(dir: &std::path::Path, api: SocketAddr) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{api}\"}}\n\
         users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake}}\n\
         current-context: fake\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn relay_command(kubeconfig: &std::path::Path, home: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sightline-relay"));
    command
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("POD_NAMESPACE")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .args([
            "--disable-client-tls",
            "--disable-server-tls",
            "--peers",
            "node-a=127.0.0.1:1",
        ])
        .args(["--config-map", CONFIG_MAP, "--config-map-namespace", NAMESPACE])
        .args(["--health-listen-address", ""]);
    command
}

async fn scrape(address: SocketAddr) -> String {
    let Ok(mut socket) = tokio::net::TcpStream::connect(address).await else {
        return String::new();
    };
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if socket.write_all(request).await.is_err() {
        return String::new();
    }
    let mut body = String::new();
    let _ = socket.read_to_string(&mut body).await;
    body
}

async fn eventually_scraped(address: SocketAddr, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = scrape(address).await;
        if body.contains(expected) {
            return;
        }
        assert!(Instant::now() < deadline, "{expected} never appeared in:\n{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn eventually_logged(log: &Mutex<Vec<String>>, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if log.lock().unwrap().iter().any(|line| line.contains(expected)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{expected} never logged:\n{}",
            log.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_follows_its_config_map_through_its_kubeconfig() {
    let (publish, latest) = watch::channel(config_map(3, "sort-buffer-len-max: 7\n"));
    let api = fake_api(latest).await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut child = relay_command(&kubeconfig(dir.path(), api), dir.path())
        .args(["--listen-address", &format!("127.0.0.1:{}", free_port())])
        .args(["--metrics-listen-address", &metrics.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _relay = Relay(child);
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });

    eventually_scraped(metrics, "sightline_relay_config_reloads_total{result=\"success\"} 1").await;
    eventually_logged(&log, "sort_buffer_len_max: 7").await;

    publish.send_replace(config_map(4, "sort-buffer-len-max: 0\n"));
    eventually_scraped(metrics, "sightline_relay_config_reloads_total{result=\"error\"} 1").await;
    eventually_logged(&log, "--sort-buffer-len-max must be between 1").await;

    publish.send_replace(config_map(5, "sort-buffer-len-max: 12\nretry-timeout: 4s\n"));
    eventually_scraped(metrics, "sightline_relay_config_reloads_total{result=\"success\"} 2").await;
    eventually_logged(&log, "sort_buffer_len_max: 12").await;
    assert!(
        log.lock()
            .unwrap()
            .iter()
            .all(|line| !line.contains("sort_buffer_len_max: 0")),
        "the broken version was never applied"
    );
}

#[test]
fn the_flag_without_an_api_server_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = relay_command(&dir.path().join("no-such-kubeconfig"), dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success(), "started without an API server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--config-map"), "{stderr}");
}
