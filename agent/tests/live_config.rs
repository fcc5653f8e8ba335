//! The live configuration against a scripted API server (tower-test): the agent
//! watches the operator's ConfigMap by name, applies each version, and reports the
//! generation it runs on its node's Lease, created and then updated.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use sightline_agent::cli::Args;
use sightline_agent::datapath::AggregationLevel;
use sightline_agent::live::runtime;
use sightline_agent::metrics::MetricsStage;
use sightline_agent::observer::ring;
use sightline_agent::observer::sink::ObserverStats;
use tokio::sync::{Notify, mpsc};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NAMESPACE: &str = "sightline";
const CONFIG_MAP: &str = "sightline-agent-config";

fn config_map(generation: i64, level: &str, resource_version: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE, "resourceVersion": resource_version},
        "data": {
            "config.yaml": format!("cluster-name: default\nmonitor-aggregation: {level}\n"),
            "metrics.yaml": "metrics:\n  - name: drop\n",
            "flowlogs.yaml": "flowLogs: []\n",
            "node-profiles.yaml": "{}\n",
            "generation": generation.to_string(),
        }
    })
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, body: String) {
    send.send_response(Response::builder().body(Body::from(body.into_bytes())).unwrap());
}

/// A Lease write the agent made: the request's path and its body.
struct LeaseWrite {
    uri: String,
    method: Method,
    body: Value,
}

/// Plays the API server: the ConfigMap list answers generation 4; the first watch
/// waits for `release`, then brings generation 5; later watches never answer.
/// Lease writes are echoed back and reported on `leases`.
async fn api_server(mut handle: Handle, release: Arc<Notify>, leases: mpsc::UnboundedSender<LeaseWrite>) {
    let mut watches = 0;
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        let method = request.method().clone();
        if uri.starts_with(&format!("/api/v1/namespaces/{NAMESPACE}/configmaps")) {
            assert!(
                uri.contains(&format!("fieldSelector=metadata.name%3D{CONFIG_MAP}")),
                "only the one ConfigMap is watched: {uri}"
            );
            if !uri.contains("watch=true") {
                let list = json!({"apiVersion": "v1", "kind": "ConfigMapList",
                    "metadata": {"resourceVersion": "40"}, "items": [config_map(4, "maximum", "40")]});
                respond(send, list.to_string());
                continue;
            }
            watches += 1;
            if watches == 1 {
                let release = release.clone();
                tokio::spawn(async move {
                    release.notified().await;
                    let event = json!({"type": "MODIFIED", "object": config_map(5, "low", "50")});
                    respond(send, format!("{event}\n"));
                });
            } else {
                // Held open, as a real watch with nothing new would be.
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(send);
                });
            }
        } else if uri.starts_with(&format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/")) {
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            respond(send, body.to_string());
            let _ = leases.send(LeaseWrite { uri, method, body });
        } else {
            panic!("unexpected request {method} {uri}");
        }
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The next Lease write that carries a generation annotation.
async fn next_generation(leases: &mut mpsc::UnboundedReceiver<LeaseWrite>) -> (LeaseWrite, String) {
    loop {
        let write = tokio::time::timeout(Duration::from_secs(10), leases.recv())
            .await
            .expect("no Lease write in time")
            .expect("API server gone");
        let generation = write.body["metadata"]["annotations"]["sightline.dev/config-generation"].clone();
        if let Some(generation) = generation.as_str() {
            let generation = generation.to_owned();
            return (write, generation);
        }
    }
}

#[tokio::test]
async fn a_config_map_update_is_applied_and_the_lease_follows_the_generation() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let release = Arc::new(Notify::new());
    let (lease_writes, mut leases) = mpsc::unbounded_channel();
    tokio::spawn(api_server(handle, release.clone(), lease_writes));

    let argv: Vec<OsString> = [
        "sightline-agent",
        "--config-map",
        CONFIG_MAP,
        "--config-map-namespace",
        NAMESPACE,
        "--config-lease-renew-interval",
        "1h",
        "--monitor-aggregation-interval",
        "3s",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let args = Args::load_from(argv.clone()).unwrap();
    let (_writer, ring) = ring::ring(1023).unwrap();
    let metrics = MetricsStage::start(&args.metrics, ring, Arc::new(ObserverStats::default()))
        .await
        .unwrap();
    let live = runtime::start(argv, &args, "node-a", &metrics, None, Some(client)).unwrap();
    assert_eq!(live.datapath.borrow().monitor_aggregation, AggregationLevel::Medium);

    let datapath = live.datapath.clone();
    eventually("generation 4's aggregation level is applied", || {
        datapath.borrow().monitor_aggregation == AggregationLevel::Maximum
    })
    .await;
    assert_eq!(
        datapath.borrow().monitor_aggregation_interval,
        Duration::from_secs(3),
        "the command line keeps winning over the ConfigMap"
    );
    let (created, generation) = next_generation(&mut leases).await;
    assert_eq!(generation, "4");
    assert_eq!(created.method, Method::PATCH);
    assert!(
        created.uri.starts_with(&format!(
            "/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/sightline-agent-node-a?"
        )) && created.uri.contains("fieldManager=sightline-agent")
            && created.uri.contains("force=true"),
        "server-side apply of the node's Lease: {}",
        created.uri
    );
    assert_eq!(created.body["kind"], "Lease");
    assert_eq!(created.body["metadata"]["labels"]["sightline.dev/component"], "agent");
    assert_eq!(created.body["spec"]["holderIdentity"], "node-a");

    release.notify_one();
    eventually("generation 5's aggregation level is applied", || {
        datapath.borrow().monitor_aggregation == AggregationLevel::Low
    })
    .await;
    let (_, generation) = next_generation(&mut leases).await;
    assert_eq!(generation, "5", "the Lease is updated with the new generation");
    assert_eq!(*live.generation.borrow(), Some(5));
}
