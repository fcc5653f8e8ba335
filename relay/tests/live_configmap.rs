//! The relay's live configuration against a scripted API server (tower-test): the
//! relay watches the operator's relay ConfigMap by name, applies the sort buffer
//! and timeouts of each version to new streams, refuses a broken version keeping
//! the last good one, and counts both in `sightline_relay_config_reloads_total`.
//! With `--pod-name` it also writes its generation Lease `sightline-relay-<pod>` by
//! server-side apply, renews it, and moves the generation only when a version is
//! applied.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Plays the API server: the list answers generation 1 with `first_config`; each
/// watch waits for the next version the test releases and answers it as a MODIFIED
/// event, ending there (the watcher watches again from that version). Lease writes
/// are echoed and reported when `leases` is given, refused as unexpected otherwise.
async fn api_server(
    mut handle: Handle,
    first_config: &'static str,
    versions: mpsc::UnboundedReceiver<Value>,
    leases: Option<mpsc::UnboundedSender<LeaseWrite>>,
) {
    let versions = Arc::new(tokio::sync::Mutex::new(versions));
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        if let Some(leases) = &leases
            && uri.starts_with(&format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/"))
        {
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
            "only the one ConfigMap (and the Lease when asked for) is requested: {} {uri}",
            request.method()
        );
        if !uri.contains("watch=true") {
            let first = config_map(1, first_config, "10");
            let list = json!({"apiVersion": "v1", "kind": "ConfigMapList",
                "metadata": {"resourceVersion": "10"}, "items": [first]});
            respond(send, list.to_string());
            continue;
        }
        let versions = versions.clone();
        tokio::spawn(async move {
            let Some(object) = versions.lock().await.recv().await else {
                // Nothing more to release: held open, as a quiet real watch would be.
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return drop(send);
            };
            let event = json!({"type": "MODIFIED", "object": object});
            respond(send, format!("{event}\n"));
        });
    }
}

/// The relay's live runtime on the scripted API server, started with `flags` after
/// the ConfigMap ones, and what a test looks at.
struct Relay {
    streams: watch::Receiver<Arc<FanoutSettings>>,
    retries: watch::Receiver<Duration>,
    dialer: Dialer,
    metrics: RelayMetrics,
    shutdown: Shutdown,
}

fn start_relay(client: Client, flags: &[&str]) -> Relay {
    let argv: Vec<OsString> = [
        "sightline-relay",
        "--disable-client-tls",
        "--disable-server-tls",
        "--config-map",
        CONFIG_MAP,
        "--config-map-namespace",
        NAMESPACE,
    ]
    .iter()
    .chain(flags)
    .map(OsString::from)
    .collect();
    let args = Args::load(argv).unwrap();
    let (fanout, streams) = watch::channel(Arc::new(FanoutSettings {
        sort_buffer_len: args.sort_buffer_len_max,
        drain_timeout: args.sort_buffer_drain_timeout,
        relay_node: "relay".into(),
        peer_refresh: Duration::from_secs(1),
    }));
    let (retry_timeout, retries) = watch::channel(args.retry_timeout);
    let dialer = Dialer::new(None, args.dial_timeout);
    let targets = Targets {
        fanout,
        retry_timeout,
        dialer: dialer.clone(),
    };
    let metrics = RelayMetrics::new();
    let shutdown = Shutdown::new();
    runtime::start(&args, targets, metrics.config_reloads(), Some(client), &shutdown).unwrap();
    Relay {
        streams,
        retries,
        dialer,
        metrics,
        shutdown,
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn reloads(metrics: &RelayMetrics, result: &str) -> u64 {
    let text = metrics.encode();
    let series = format!("sightline_relay_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series}in {text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_relay_follows_its_config_map_and_keeps_the_last_good_version() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (versions, released) = mpsc::unbounded_channel();
    let first = "cluster-name: default\nsort-buffer-len-max: 50\nretry-timeout: 7s\n";
    tokio::spawn(api_server(handle, first, released, None));
    let Relay {
        streams,
        retries,
        dialer,
        metrics,
        shutdown,
    } = start_relay(client, &["--dial-timeout", "2s"]);
    assert_eq!(
        streams.borrow().sort_buffer_len,
        100,
        "the default until the ConfigMap is read"
    );

    let sort_buffer = || streams.borrow().sort_buffer_len;
    eventually("generation 1's sort buffer is applied", || sort_buffer() == 50).await;
    assert_eq!(*retries.borrow(), Duration::from_secs(7));
    assert_eq!(
        dialer.timeout(),
        Duration::from_secs(2),
        "the command line keeps winning"
    );
    assert_eq!(reloads(&metrics, "success"), 1);

    versions
        .send(config_map(
            2,
            "cluster-name: default\nsort-buffer-len-max: 20\nretry-timeout: 3s\n",
            "20",
        ))
        .unwrap();
    eventually("generation 2's sort buffer is applied", || sort_buffer() == 20).await;
    assert_eq!(*retries.borrow(), Duration::from_secs(3));

    // A value the relay refuses, then a ConfigMap without its config key.
    versions
        .send(config_map(3, "sort-buffer-len-max: 0\nretry-timeout: 1s\n", "30"))
        .unwrap();
    eventually("the broken generation 3 is counted", || reloads(&metrics, "error") == 1).await;
    let mut missing = config_map(4, "", "40");
    missing["data"] = json!({"generation": "4"});
    versions.send(missing).unwrap();
    eventually("the ConfigMap without config.yaml is counted", || {
        reloads(&metrics, "error") == 2
    })
    .await;
    assert_eq!(sort_buffer(), 20, "the last good version stays in force");
    assert_eq!(*retries.borrow(), Duration::from_secs(3));

    versions.send(config_map(5, "sort-buffer-len-max: 30\n", "50")).unwrap();
    eventually("generation 5 applies after the broken ones", || sort_buffer() == 30).await;
    assert_eq!(reloads(&metrics, "success"), 3);
    assert_eq!(reloads(&metrics, "error"), 2);
    shutdown.cancel();
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

#[tokio::test]
async fn the_relay_reports_the_generation_it_applied_on_its_pods_lease() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let (versions, released) = mpsc::unbounded_channel();
    let (lease_writes, mut leases) = mpsc::unbounded_channel();
    tokio::spawn(api_server(
        handle,
        "sort-buffer-len-max: 50\n",
        released,
        Some(lease_writes),
    ));
    let Relay {
        streams,
        metrics,
        shutdown,
        ..
    } = start_relay(client, &["--pod-name", POD, "--config-lease-renew-interval", "100ms"]);

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
    eventually("generation 3 is refused", || reloads(&metrics, "error") == 1).await;
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
