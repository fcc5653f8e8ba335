//! The watchers against a scripted API server (tower-test): lists, watches, 410 Gone
//! relists and changes, as a real API server would send them.
#![allow(clippy::unwrap_used)]

mod enrich_support;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use enrich_support::index;
use http::{Request, Response};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};
use sightline_agent::enrich::Index;
use sightline_agent::k8s::watch;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// Answers the next request, checking it is a list or a watch of `path`.
async fn answer(handle: &mut Handle, path: &str, watch: bool, body: String) {
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), handle.next_request())
        .await
        .expect("the watcher sent no request in time")
        .expect("mock closed");
    let uri = request.uri().to_string();
    assert!(uri.starts_with(path), "{uri}");
    assert_eq!(uri.contains("watch=true"), watch, "{uri}");
    send.send_response(Response::builder().body(Body::from(body.into_bytes())).unwrap());
}

fn list(kind: &str, resource_version: &str, items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": resource_version}, "items": items})
        .to_string()
}

fn watch_events(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(kind, object)| format!("{}\n", json!({"type": kind, "object": object})))
        .collect()
}

fn gone() -> String {
    watch_events(&[(
        "ERROR",
        json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
               "message": "too old resource version: 11 (20)", "reason": "Expired", "code": 410}),
    )])
}

fn pod(name: &str, ip: &str, created: &str, resource_version: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                     "resourceVersion": resource_version, "creationTimestamp": created,
                     "labels": {"app": name}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    })
}

fn pod_at(index: &Index, ip: &str) -> Option<String> {
    index.endpoint(ip.parse().unwrap()).map(|e| e.pod_name.clone())
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn<F: Future<Output = ()> + Send + 'static>(f: F) -> tokio::task::JoinHandle<()> {
    tokio::spawn(f)
}

#[tokio::test]
async fn pod_watch_handles_ip_reuse_gone_relist_and_deletions_while_down() {
    let (client, mut api) = mock_client();
    let index = index("node-a");
    let watcher = spawn(watch::run::<Pod>(Api::all(client), index.clone()));

    let t0 = "2026-01-01T00:00:00Z";
    let t1 = "2026-01-01T01:00:00Z";
    answer(
        &mut api,
        "/api/v1/pods",
        false,
        list(
            "PodList",
            "10",
            vec![
                pod("old", "10.0.0.5", t0, "8"),
                pod("keep", "10.0.0.6", t0, "9"),
                pod("gone", "10.0.0.7", t0, "10"),
            ],
        ),
    )
    .await;
    eventually("the list is indexed", || {
        pod_at(&index, "10.0.0.7").as_deref() == Some("gone")
    })
    .await;
    assert_eq!(pod_at(&index, "10.0.0.5").as_deref(), Some("old"));

    // A new pod gets the dead pod's IP before the old pod's deletion arrives: one
    // watch response each (the watcher re-watches when a response ends), so the
    // state in between is what is checked.
    answer(
        &mut api,
        "/api/v1/pods",
        true,
        watch_events(&[("ADDED", pod("new", "10.0.0.5", t1, "11"))]),
    )
    .await;
    eventually("the new pod owns the IP while the old one still exists", || {
        pod_at(&index, "10.0.0.5").as_deref() == Some("new")
    })
    .await;
    answer(
        &mut api,
        "/api/v1/pods",
        true,
        watch_events(&[("MODIFIED", pod("old", "10.0.0.5", t0, "12"))]),
    )
    .await;
    // The watcher asks again only after it applied the update: then, a late update
    // of the old pod has not taken the address back.
    let (request, send) = tokio::time::timeout(Duration::from_secs(10), api.next_request())
        .await
        .expect("the watcher re-watches")
        .expect("mock open");
    assert!(request.uri().to_string().contains("watch=true"));
    assert_eq!(pod_at(&index, "10.0.0.5").as_deref(), Some("new"));
    let deleted = watch_events(&[("DELETED", pod("old", "10.0.0.5", t0, "13"))]);
    send.send_response(Response::builder().body(Body::from(deleted.into_bytes())).unwrap());

    // The next watch is too old: the watcher relists; "gone" was deleted meanwhile.
    answer(&mut api, "/api/v1/pods", true, gone()).await;
    answer(
        &mut api,
        "/api/v1/pods",
        false,
        list(
            "PodList",
            "20",
            vec![pod("new", "10.0.0.5", t1, "11"), pod("keep", "10.0.0.6", t0, "9")],
        ),
    )
    .await;
    eventually("the pod deleted during the outage is gone", || {
        pod_at(&index, "10.0.0.7").is_none()
    })
    .await;
    assert_eq!(pod_at(&index, "10.0.0.5").as_deref(), Some("new"));
    assert_eq!(pod_at(&index, "10.0.0.6").as_deref(), Some("keep"));
    watcher.abort();
}

fn service(cluster_ip: &str, resource_version: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "uid": "svc-web", "resourceVersion": resource_version},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                 "ports": [{"port": 80, "protocol": "TCP"}]}
    })
}

#[tokio::test]
async fn a_service_that_changes_its_cluster_ip_moves_in_the_index() {
    let (client, mut api) = mock_client();
    let index = index("node-a");
    let watcher = spawn(watch::run::<Service>(Api::all(client), index.clone()));
    let vip = |ip: &str| index.service(ip.parse().unwrap()).map(|s| s.name.clone());

    answer(
        &mut api,
        "/api/v1/services",
        false,
        list("ServiceList", "5", vec![service("10.96.0.10", "5")]),
    )
    .await;
    eventually("the service is indexed", || vip("10.96.0.10").as_deref() == Some("web")).await;
    answer(
        &mut api,
        "/api/v1/services",
        true,
        watch_events(&[("MODIFIED", service("10.96.0.20", "6"))]),
    )
    .await;
    eventually("the new VIP names the service", || {
        vip("10.96.0.20").as_deref() == Some("web")
    })
    .await;
    assert_eq!(vip("10.96.0.10"), None);
    answer(
        &mut api,
        "/api/v1/services",
        true,
        watch_events(&[("DELETED", service("10.96.0.20", "7"))]),
    )
    .await;
    eventually("the deleted service is gone", || vip("10.96.0.20").is_none()).await;
    watcher.abort();
}

#[tokio::test]
async fn node_peers_come_from_watched_nodes() {
    let (client, mut api) = mock_client();
    let index: Arc<Index> = index("node-a");
    let mut peers = index.peers();
    let watcher = spawn(watch::run::<Node>(Api::all(client), index.clone()));
    let node = |name: &str, ip: &str| {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "resourceVersion": "1"},
               "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}})
    };
    answer(
        &mut api,
        "/api/v1/nodes",
        false,
        list("NodeList", "1", vec![node("node-a", "192.168.0.1")]),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(10), peers.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peers.borrow_and_update()[0].address.to_string(), "192.168.0.1:4244");
    answer(
        &mut api,
        "/api/v1/nodes",
        true,
        watch_events(&[("ADDED", node("node-b", "192.168.0.2"))]),
    )
    .await;
    tokio::time::timeout(Duration::from_secs(10), peers.changed())
        .await
        .unwrap()
        .unwrap();
    let names: Vec<String> = peers.borrow_and_update().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, vec!["node-a", "node-b"]);
    watcher.abort();
}

fn args_with(kubeconfig: Option<std::path::PathBuf>) -> sightline_agent::k8s::K8sArgs {
    sightline_agent::k8s::K8sArgs {
        kubeconfig,
        manifests: None,
        k8s_disabled: false,
        cluster_domain: "cluster.local".into(),
    }
}

fn node_a() -> sightline_agent::enrich::IndexConfig {
    sightline_agent::enrich::IndexConfig {
        cluster: "default".into(),
        local_node: "node-a".into(),
        agent_port: 4244,
    }
}

#[tokio::test]
async fn a_kubeconfig_gives_a_running_source_and_a_broken_one_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    // An https server nobody listens on: the TLS client must still build.
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let k8s = sightline_agent::k8s::start(&args_with(Some(path)), node_a())
        .await
        .unwrap();
    let k8s = k8s.expect("a configured cluster enables enrichment");
    assert_eq!(k8s.index.agent_events().len(), 1, "AGENT_STARTED is queued");

    let broken = dir.path().join("broken");
    std::fs::write(&broken, "clusters: [oops").unwrap();
    let error = sightline_agent::k8s::start(&args_with(Some(broken.clone())), node_a())
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&broken.display().to_string()), "{error}");

    let disabled = sightline_agent::k8s::K8sArgs {
        k8s_disabled: true,
        ..args_with(None)
    };
    assert!(
        sightline_agent::k8s::start(&disabled, node_a())
            .await
            .unwrap()
            .is_none()
    );
}
