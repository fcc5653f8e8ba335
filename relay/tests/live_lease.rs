//! The relay's generation Lease against a scripted API server (tower-test): with
//! `--config-map` and `--pod-name` the relay writes `sightline-relay-<pod>` by
//! server-side apply, renews it, and moves its generation only when a version of
//! the ConfigMap is applied: a refused version leaves the last good generation.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use sightline_common::shutdown::Shutdown;
use sightline_relay::config::Args;
use sightline_relay::dial::Dialer;
use sightline_relay::fanout::FanoutSettings;
use sightline_relay::live::{Targets, runtime};
use sightline_relay::metrics::RelayMetrics;
use tokio::sync::{mpsc, watch};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NAMESPACE: &str = "sightline";
const CONFIG_MAP: &str = "sightline-relay-config";
const POD: &str = "hubble-relay-5b7c9d-q8v2k";

fn config_map(generation: i64, config: &str, resource_version: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE, "resourceVersion": resource_version},
        "data": {"config.yaml": config, "generation": generation.to_string()}
    })
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, body: String) {
    send.send_response(Response::builder().body(Body::from(body.into_bytes())).unwrap());
}

/// A Lease write: path and body.
struct LeaseWrite {
    uri: String,
    body: Value,
}

/// Plays the API server: the ConfigMap's list answers generation 1, each watch
/// the next version the test releases; Lease writes are echoed and reported.
async fn api_server(
    mut handle: Handle,
    versions: mpsc::UnboundedReceiver<Value>,
    leases: mpsc::UnboundedSender<LeaseWrite>,
) {
    let versions = Arc::new(tokio::sync::Mutex::new(versions));
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        if uri.starts_with(&format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/")) {
            assert_eq!(request.method(), "PATCH", "{uri}");
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            respond(send, body.to_string());
            let _ = leases.send(LeaseWrite { uri, body });
            continue;
        }
        assert!(
            uri.starts_with(&format!("/api/v1/namespaces/{NAMESPACE}/configmaps"))
                && uri.contains(&format!("fieldSelector=metadata.name%3D{CONFIG_MAP}")),
            "only the ConfigMap and the Lease: {uri}"
        );
        if !uri.contains("watch=true") {
            let first = config_map(1, "sort-buffer-len-max: 50\n", "10");
            let list = json!({"apiVersion": "v1", "kind": "ConfigMapList",
                "metadata": {"resourceVersion": "10"}, "items": [first]});
            respond(send, list.to_string());
            continue;
        }
        let versions = versions.clone();
        tokio::spawn(async move {
            let Some(object) = versions.lock().await.recv().await else {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return drop(send);
            };
            respond(send, format!("{}\n", json!({"type": "MODIFIED", "object": object})));
        });
    }
}

/// Lease writes until one reports `generation`; panics after 10 s.
async fn until_generation(leases: &mut mpsc::UnboundedReceiver<LeaseWrite>, generation: &str) -> LeaseWrite {
    loop {
        let write = tokio::time::timeout(Duration::from_secs(10), leases.recv())
            .await
            .unwrap_or_else(|_| panic!("no Lease write with generation {generation} in time"))
            .expect("the API server runs");
        if write.body["metadata"]["annotations"]["sightline.dev/config-generation"] == generation {
            return write;
        }
    }
}

fn reloads(metrics: &RelayMetrics, result: &str) -> u64 {
    let series = format!("sightline_relay_config_reloads_total{{result=\"{result}\"}} ");
    metrics
        .encode()
        .lines()
        .find_map(|line| line.strip_prefix(&series).map(|n| n.trim().parse().unwrap()))
        .unwrap_or(0)
}

#[tokio::test]
async fn the_relay_reports_the_generation_it_applied_on_its_pods_lease() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (versions, released) = mpsc::unbounded_channel();
    let (lease_writes, mut leases) = mpsc::unbounded_channel();
    tokio::spawn(api_server(handle, released, lease_writes));

    let argv: Vec<OsString> = [
        "sightline-relay",
        "--disable-client-tls",
        "--disable-server-tls",
        "--config-map",
        CONFIG_MAP,
        "--config-map-namespace",
        NAMESPACE,
        "--pod-name",
        POD,
        "--config-lease-renew-interval",
        "100ms",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let args = Args::load(argv).unwrap();
    let (fanout, streams) = watch::channel(Arc::new(FanoutSettings {
        sort_buffer_len: args.sort_buffer_len_max,
        drain_timeout: args.sort_buffer_drain_timeout,
        relay_node: "relay".into(),
        peer_refresh: Duration::from_secs(1),
    }));
    let (retry_timeout, _retries) = watch::channel(args.retry_timeout);
    let targets = Targets {
        fanout,
        retry_timeout,
        dialer: Dialer::new(None, args.dial_timeout),
    };
    let metrics = RelayMetrics::new();
    let shutdown = Shutdown::new();
    runtime::start(&args, targets, metrics.config_reloads(), Some(client), &shutdown).unwrap();

    // Created for the pod, on the generation the listed ConfigMap gave.
    let created = until_generation(&mut leases, "1").await;
    assert!(
        created.uri.starts_with(&format!(
            "/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/sightline-relay-{POD}?"
        )),
        "{}",
        created.uri
    );
    assert!(created.uri.contains("fieldManager=sightline-relay"), "{}", created.uri);
    assert_eq!(created.body["spec"]["holderIdentity"], POD);
    assert_eq!(created.body["metadata"]["labels"]["sightline.dev/component"], "relay");
    assert_eq!(streams.borrow().sort_buffer_len, 50);

    // Renewed while nothing changes.
    let renewed = until_generation(&mut leases, "1").await;
    assert_ne!(renewed.body["spec"]["renewTime"], created.body["spec"]["renewTime"]);

    // A live config apply moves the generation.
    versions.send(config_map(2, "sort-buffer-len-max: 20\n", "20")).unwrap();
    until_generation(&mut leases, "2").await;
    assert_eq!(streams.borrow().sort_buffer_len, 20);

    // A refused version is not reported: the renewals after it still say 2.
    versions.send(config_map(3, "sort-buffer-len-max: 0\n", "30")).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reloads(&metrics, "error") < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "generation 3 was not refused in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while leases.try_recv().is_ok() {}
    for _ in 0..3 {
        let write = tokio::time::timeout(Duration::from_secs(10), leases.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            write.body["metadata"]["annotations"]["sightline.dev/config-generation"], "2",
            "the Lease keeps the last good generation"
        );
    }
    shutdown.cancel();
}
