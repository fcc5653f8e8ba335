//! Test doubles for the relay: Hubble agents that generate flows on a timer and can
//! be killed (their sockets shut down, as when the process dies) and restarted on the
//! same port, a peer service, and certificates.
#![allow(dead_code, clippy::unwrap_used)]

pub mod agent;
pub mod certs;
pub mod killable;
pub mod peer_service;
pub mod streams;

use std::time::Duration;

use sightline_proto::observer::observer_client::ObserverClient;
use sightline_relay::app::{self, RunningRelay};
use sightline_relay::config::Args;
use tonic::transport::Channel;

/// A relay on loopback with plaintext on both sides and the given extra flags.
pub async fn relay(extra: &[&str]) -> RunningRelay {
    let mut argv = vec![
        "sightline-relay",
        "--listen-address",
        "127.0.0.1:0",
        "--health-listen-address",
        "",
        "--metrics-listen-address",
        "127.0.0.1:0",
        "--disable-server-tls",
        "--dial-timeout",
        "1s",
    ];
    argv.extend_from_slice(extra);
    let args = Args::load(argv.into_iter().map(Into::into).collect()).expect("relay flags");
    app::start(args).await.expect("relay starts")
}

pub async fn client(relay: &RunningRelay) -> ObserverClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", relay.api_address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    ObserverClient::new(channel)
}

/// A GetFlows stream through `relay`.
pub async fn get_flows(
    relay: &RunningRelay,
    request: sightline_proto::observer::GetFlowsRequest,
) -> tonic::Streaming<sightline_proto::observer::GetFlowsResponse> {
    client(relay)
        .await
        .get_flows(request)
        .await
        .expect("GetFlows")
        .into_inner()
}

/// A follow-mode GetFlows stream through `relay`.
pub async fn follow(relay: &RunningRelay) -> tonic::Streaming<sightline_proto::observer::GetFlowsResponse> {
    let request = sightline_proto::observer::GetFlowsRequest {
        follow: true,
        ..Default::default()
    };
    get_flows(relay, request).await
}

/// Waits until `done` holds, polling; fails naming `what` after `within`.
pub async fn eventually(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `relay` reports `connected` peers as connected.
pub async fn until_connected(relay: &RunningRelay, connected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = relay.pool.snapshot().iter().filter(|p| p.client().is_some()).count();
        if now == connected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{now} peers connected, expected {connected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
