//! Relay throughput and added latency, against synthetic agents on loopback.
//!
//! `cargo bench -p sightline-relay --bench merge` prints one table:
//! - merged flows/s from 2, 4 and 8 agents replaying their history (non-follow,
//!   everything through the sort buffer), with the rate one client gets straight
//!   from a single agent in the same run as the baseline;
//! - added latency (receive time − flow time) p50/p99 in follow mode at a fixed rate.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use sightline_proto::Timestamp;
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, get_flows_response::ResponseTypes};
use support::agent::FakeAgent;
use tonic::transport::Channel;

const TOTAL_FLOWS: i64 = 400_000;

async fn agents_with_history(count: usize) -> Vec<FakeAgent> {
    let mut agents = Vec::new();
    for i in 0..count {
        agents.push(FakeAgent::start(&format!("node-{i}"), &[]).await);
    }
    let per_agent = TOTAL_FLOWS / count as i64;
    for k in 0..per_agent {
        for (i, agent) in agents.iter().enumerate() {
            agent.emit(Timestamp::from_unix_nanos(i128::from(k) * 1_000 + i as i128));
        }
    }
    agents
}

async fn drain(mut client: ObserverClient<Channel>, request: GetFlowsRequest) -> (u64, Duration) {
    let started = Instant::now();
    let mut stream = client.get_flows(request).await.expect("GetFlows").into_inner();
    let mut flows = 0;
    while let Some(message) = stream.message().await.expect("stream") {
        if matches!(message.response_types, Some(ResponseTypes::Flow(_))) {
            flows += 1;
        }
    }
    (flows, started.elapsed())
}

fn peers(agents: &[FakeAgent]) -> String {
    agents
        .iter()
        .map(|a| format!("{}={}", a.name, a.address))
        .collect::<Vec<_>>()
        .join(",")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    println!("| measurement | value | vs baseline |");
    println!("|---|---|---|");

    let direct = agents_with_history(1).await;
    let channel = Channel::from_shared(format!("http://{}", direct[0].address))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let (flows, took) = drain(ObserverClient::new(channel), GetFlowsRequest::default()).await;
    let baseline = flows as f64 / took.as_secs_f64();
    println!("| one agent straight to the client (baseline) | {baseline:.0} flows/s | 1.00 |");
    drop(direct);

    for count in [2, 4, 8] {
        let agents = agents_with_history(count).await;
        let relay = support::relay(&[
            "--disable-client-tls",
            "--dial-timeout",
            "10s",
            "--peers",
            &peers(&agents),
        ])
        .await;
        support::until_connected(&relay, count).await;
        let (flows, took) = drain(support::client(&relay).await, GetFlowsRequest::default()).await;
        assert_eq!(
            flows,
            TOTAL_FLOWS as u64 / count as u64 * count as u64,
            "every flow arrives"
        );
        let rate = flows as f64 / took.as_secs_f64();
        println!(
            "| merged through the relay from {count} agents | {rate:.0} flows/s | {:.2} |",
            rate / baseline
        );
        relay.shutdown().await;
    }

    let agents: Vec<FakeAgent> = {
        let mut agents = Vec::new();
        for i in 0..4 {
            agents.push(FakeAgent::start(&format!("live-{i}"), &[]).await);
        }
        agents
    };
    let relay = support::relay(&[
        "--disable-client-tls",
        "--dial-timeout",
        "10s",
        "--peers",
        &peers(&agents),
    ])
    .await;
    support::until_connected(&relay, 4).await;
    let mut stream = support::client(&relay)
        .await
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("GetFlows")
        .into_inner();
    for agent in &agents {
        agent.emit_every(Duration::from_millis(1), Duration::ZERO);
    }
    let mut latencies = Vec::new();
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(5) {
        let Some(message) = stream.message().await.expect("stream") else {
            break;
        };
        if let (Some(ResponseTypes::Flow(_)), Some(time)) = (&message.response_types, message.time) {
            let sent = std::time::SystemTime::from(time);
            latencies.push(std::time::SystemTime::now().duration_since(sent).unwrap_or_default());
        }
    }
    latencies.sort();
    let rate = latencies.len() as f64 / 5.0;
    println!(
        "| added latency at {rate:.0} flows/s from 4 agents (drain timeout 1 s) | p50 {:.1} ms, p99 {:.1} ms | — |",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    relay.shutdown().await;
}
