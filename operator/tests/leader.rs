//! Leader election against the mocked API server: one leader at a time, a clean
//! handover on shutdown, a takeover after a leader dies without releasing.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use sightline_common::shutdown::Shutdown;
use sightline_operator::controller::leader::{self, Election};
use support::fake_api::FakeApi;
use tokio::sync::watch;
use tokio::task::JoinHandle;

struct Candidate {
    leading: watch::Receiver<bool>,
    shutdown: Shutdown,
    task: JoinHandle<()>,
}

fn candidate(api: &FakeApi, identity: &str) -> Candidate {
    candidate_with_client(api.client(), identity)
}

fn candidate_with_client(client: kube::Client, identity: &str) -> Candidate {
    let (sender, leading) = watch::channel(false);
    let shutdown = Shutdown::new();
    let election = Election {
        lease_name: "sightline-operator".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(2),
        renew_interval: Duration::from_millis(200),
    };
    let task = tokio::spawn(leader::run(
        client,
        "sightline".into(),
        election,
        sender,
        shutdown.clone(),
    ));
    Candidate {
        leading,
        shutdown,
        task,
    }
}

async fn until_leading(candidate: &mut Candidate, within: Duration) {
    tokio::time::timeout(within, candidate.leading.wait_for(|lead| *lead))
        .await
        .expect("did not become leader in time")
        .unwrap();
}

fn holder(api: &FakeApi) -> String {
    api.get("apis/coordination.k8s.io/v1/namespaces/sightline/leases/sightline-operator")
        .unwrap()["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn one_leader_a_clean_handover_and_a_takeover_after_a_crash() {
    let api = FakeApi::default();
    let mut a = candidate(&api, "replica-a");
    until_leading(&mut a, Duration::from_secs(5)).await;
    let mut b = candidate(&api, "replica-b");
    // B keeps trying for a while without ever leading next to A.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!*b.leading.borrow(), "two leaders");
    }
    assert_eq!(holder(&api), "replica-a");

    // A shuts down and releases the Lease: B takes over well before it would expire.
    a.shutdown.cancel();
    a.task.await.unwrap();
    assert!(!*a.leading.borrow());
    until_leading(&mut b, Duration::from_secs(1)).await;
    assert_eq!(holder(&api), "replica-b");

    // B dies without releasing: C waits out the lease duration, then leads.
    let mut c = candidate(&api, "replica-c");
    b.task.abort();
    let started = tokio::time::Instant::now();
    until_leading(&mut c, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "took over a live lease"
    );
    assert_eq!(holder(&api), "replica-c");
    let lease = api
        .get("apis/coordination.k8s.io/v1/namespaces/sightline/leases/sightline-operator")
        .unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 3);
    c.shutdown.cancel();
    c.task.await.unwrap();
}

/// A leader whose requests stop being answered (a partition: the client waits for
/// its read timeout, minutes) must stop leading before its Lease expires, since a
/// standby takes over then; otherwise two replicas reconcile at once.
#[tokio::test]
async fn a_leader_cut_off_from_the_api_server_steps_down_before_its_lease_expires() {
    let api = FakeApi::default();
    let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut a = candidate_with_client(api.client_with_cut(cut.clone()), "replica-a");
    until_leading(&mut a, Duration::from_secs(5)).await;
    let mut b = candidate(&api, "replica-b");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!*b.leading.borrow());

    cut.store(true, std::sync::atomic::Ordering::SeqCst);
    let cut_at = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(2), a.leading.wait_for(|lead| !*lead))
        .await
        .expect("the cut-off leader went on leading up to its lease's expiry")
        .unwrap();
    assert!(cut_at.elapsed() < Duration::from_secs(2), "stepped down too late");
    until_leading(&mut b, Duration::from_secs(5)).await;
    assert!(!*a.leading.borrow(), "two leaders");
    assert_eq!(holder(&api), "replica-b");
    b.shutdown.cancel();
    b.task.await.unwrap();
    a.task.abort();
}

/// A holder whose clock runs an hour behind ours writes renew times that look long
/// expired; as long as it keeps renewing, it holds the Lease. Expiry is judged on
/// our clock from when we saw its last renewal, so we take over only once it stops.
#[tokio::test]
async fn a_holder_with_a_clock_behind_ours_keeps_the_lease_while_it_renews() {
    let api = FakeApi::default();
    let path = "apis/coordination.k8s.io/v1/namespaces/sightline/leases/sightline-operator";
    let write_renewal = |api: &FakeApi| {
        let behind = k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(1);
        api.insert(
            path,
            serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "sightline-operator", "namespace": "sightline"},
                   "spec": {"holderIdentity": "replica-slow-clock", "leaseDurationSeconds": 2,
                            "renewTime": behind.to_string(), "acquireTime": behind.to_string()}}),
        );
    };
    write_renewal(&api);
    let renewer = {
        let api = api.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                write_renewal(&api);
            }
        })
    };
    let mut b = candidate(&api, "replica-b");
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!*b.leading.borrow(), "took over a Lease that is being renewed");
    }
    assert_eq!(holder(&api), "replica-slow-clock");

    renewer.abort();
    let stopped = tokio::time::Instant::now();
    until_leading(&mut b, Duration::from_secs(5)).await;
    assert!(
        stopped.elapsed() >= Duration::from_millis(1500),
        "took over before the lease ran out"
    );
    assert_eq!(holder(&api), "replica-b");
    b.shutdown.cancel();
    b.task.await.unwrap();
}
