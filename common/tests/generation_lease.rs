//! The generation Lease against a scripted API server (tower-test): created by
//! server-side apply as soon as reporting starts, renewed on its timer, rewritten
//! at once with a new generation, written again after a failed write, and no more
//! once the generation's sender is gone. Time is paused, so the renewal timer
//! fires as soon as everything else waits.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{Value, json};
use sightline_common::generation_lease::GenerationLease;
use tokio::sync::watch;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const NAMESPACE: &str = "sightline";
const RENEW: Duration = Duration::from_secs(10);

/// One write as the API server saw it, and when.
struct Write {
    method: String,
    uri: String,
    content_type: String,
    body: Value,
    at: tokio::time::Instant,
    respond: tower_test::mock::SendResponse<Response<Body>>,
}

async fn next_write(handle: &mut Handle) -> Write {
    let (request, respond) = tokio::time::timeout(RENEW * 2, handle.next_request())
        .await
        .expect("a Lease write within two renew intervals")
        .expect("the client is alive");
    let at = tokio::time::Instant::now();
    let method = request.method().to_string();
    let uri = request.uri().to_string();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    Write {
        method,
        uri,
        content_type,
        body: serde_json::from_slice(&bytes).unwrap(),
        at,
        respond,
    }
}

fn answer(write: Write, status: u16) {
    let body = if status < 300 {
        write.body.to_string()
    } else {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
               "reason": "InternalError", "message": "etcd is away"})
        .to_string()
    };
    write.respond.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(body.into_bytes()))
            .unwrap(),
    );
}

fn generation(write: &Write) -> Option<&str> {
    write.body["metadata"]["annotations"]["sightline.dev/config-generation"].as_str()
}

#[tokio::test(start_paused = true)]
async fn the_lease_is_created_renewed_and_follows_the_generation() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, NAMESPACE);
    let (generation_tx, generation_rx) = watch::channel(Some(3));
    let reporter = GenerationLease {
        component: "relay",
        holder: "hubble-relay-6d5f-abcde".to_owned(),
        renew_interval: RENEW,
    };
    let started = tokio::time::Instant::now();
    let task = tokio::spawn(reporter.report(Api::namespaced(client, NAMESPACE), generation_rx));

    // Created at once: a server-side apply PATCH of the named Lease, forced, by the
    // relay's own field manager.
    let created = next_write(&mut handle).await;
    assert_eq!(created.at, started, "written as reporting starts");
    assert_eq!(created.method, "PATCH");
    let path =
        format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/sightline-relay-hubble-relay-6d5f-abcde?");
    assert!(created.uri.starts_with(&path), "{}", created.uri);
    assert!(
        created.uri.contains("fieldManager=sightline-relay") && created.uri.contains("force=true"),
        "{}",
        created.uri
    );
    assert_eq!(created.content_type, "application/apply-patch+yaml");
    assert_eq!(created.body["spec"]["holderIdentity"], "hubble-relay-6d5f-abcde");
    assert_eq!(created.body["spec"]["leaseDurationSeconds"], 30);
    assert_eq!(created.body["metadata"]["labels"]["sightline.dev/component"], "relay");
    assert_eq!(generation(&created), Some("3"));
    let first_at = created.at;
    answer(created, 201);

    // Renewed by the timer with nothing else changed; a failed renewal is retried
    // at the next one.
    let renewed = next_write(&mut handle).await;
    assert_eq!(renewed.at - first_at, RENEW);
    assert_eq!(generation(&renewed), Some("3"));
    assert!(renewed.body["spec"]["renewTime"].is_string());
    assert_eq!(renewed.uri, format!("{path}{}", renewed.uri.split_once('?').unwrap().1));
    let renewed_at = renewed.at;
    answer(renewed, 500);
    let retried = next_write(&mut handle).await;
    assert_eq!(retried.at - renewed_at, RENEW);
    assert_eq!(generation(&retried), Some("3"));
    let retried_at = retried.at;
    answer(retried, 200);

    // A new generation is written at once, not at the next renewal.
    generation_tx.send(Some(4)).unwrap();
    let changed = next_write(&mut handle).await;
    assert_eq!(changed.at, retried_at, "no wait for the timer");
    assert_eq!(generation(&changed), Some("4"));
    answer(changed, 200);

    // The component stops: reporting ends, no more writes.
    drop(generation_tx);
    tokio::time::timeout(RENEW, task)
        .await
        .expect("reporting ends with its sender")
        .unwrap();
}
