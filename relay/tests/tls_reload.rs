//! Certificates rotated under a running relay (as when Kubernetes updates a mounted
//! secret): the next dial to an agent uses the new files, with no restart.

mod support;

use std::time::Duration;

use support::agent::FakeAgent;
use support::certs::{Ca, agent_server_config};
use support::{eventually, relay, until_connected};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_agent_ca_is_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old_ca, new_ca) = (Ca::new("Sightline CA 1"), Ca::new("Sightline CA 2"));
    // The agents already run with certificates of the new CA; the relay still trusts the old one.
    let server = new_ca.issue(dir.path(), "server", &["*.default.hubble-grpc.cilium.io"]);
    let new_ca_file = new_ca.write_ca(dir.path(), "new-ca.crt");
    let relay_client = new_ca.issue(dir.path(), "relay", &["client.hubble-relay.cilium.io"]);
    let agent = FakeAgent::start_with_tls("node-a", &[], Some(agent_server_config(&server, &new_ca_file))).await;
    let trusted = old_ca.write_ca(dir.path(), "ca.crt");
    let relay = relay(&[
        "--peers",
        &format!("node-a={}", agent.address),
        "--tls-hubble-server-ca-files",
        trusted.to_str().expect("utf-8"),
        "--tls-hubble-client-cert-file",
        relay_client.cert.to_str().expect("utf-8"),
        "--tls-hubble-client-key-file",
        relay_client.key.to_str().expect("utf-8"),
    ])
    .await;
    // Unconnected is also what a peer never dialled looks like: wait for the
    // relay's dial to reach the agent and fail its handshake.
    eventually(Duration::from_secs(10), "the relay never dialled the agent", || {
        agent.failed_handshakes() >= 1
    })
    .await;
    assert!(
        relay.pool.snapshot().iter().all(|p| p.client().is_none()),
        "an agent certificate from an untrusted CA was accepted"
    );
    assert_eq!(agent.flows_calls(), 0, "no call may pass a refused handshake");

    // The secret update: the CA file now holds the new CA.
    std::fs::copy(&new_ca_file, &trusted).expect("rotate the CA file");
    until_connected(&relay, 1).await;
}
