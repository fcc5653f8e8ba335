//! Which events a request's window selects once the relay merges every node:
//! `since` with `number`, `number` while following, and agent events.

mod support;

use std::time::Duration;

use sightline_proto::Timestamp;
use sightline_proto::observer::{GetAgentEventsRequest, GetFlowsRequest, GetFlowsResponse};
use sightline_proto::relay::NodeState;
use support::agent::FakeAgent;
use support::streams::{collect_all, flow_node, interleaved_agents, next, peers, status_of};
use support::{client, get_flows, relay, until_connected};

fn at(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos: 0 })
}

fn flow_seconds(all: &[GetFlowsResponse]) -> Vec<i64> {
    all.iter()
        .filter(|r| flow_node(r).is_some())
        .map(|r| r.time.expect("time").seconds)
        .collect()
}

/// `hubble observe --since T --last N`: every agent answers with the first N flows
/// after T, so the cluster's answer is the first N after T of all nodes together.
#[tokio::test]
async fn since_with_number_means_the_first_n_flows_after_since_of_the_whole_cluster() {
    let [a, b, c] = interleaved_agents().await;
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b, &c])]).await;
    until_connected(&relay, 3).await;
    let request = GetFlowsRequest {
        number: 5,
        since: at(150),
        ..Default::default()
    };
    let all = collect_all(&mut get_flows(&relay, request).await).await;
    assert_eq!(flow_seconds(&all), [150, 151, 152, 153, 154]);
}

/// With `since` in follow mode, agents send everything after it and go on: the
/// relay must not cut that history down to `number`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_with_since_sends_everything_after_since_then_live_flows() {
    let [a, b, c] = interleaved_agents().await;
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b, &c])]).await;
    until_connected(&relay, 3).await;
    let request = GetFlowsRequest {
        number: 2,
        follow: true,
        since: at(180),
        ..Default::default()
    };
    let mut stream = get_flows(&relay, request).await;
    let mut history = Vec::new();
    while history.len() < 10 {
        let message = next(&mut stream).await.expect("open stream");
        if flow_node(&message).is_some() {
            history.push(message);
        }
    }
    assert_eq!(flow_seconds(&history), (180..190).collect::<Vec<_>>());
    a.emit(Timestamp::now());
    loop {
        let message = next(&mut stream).await.expect("open stream");
        if flow_node(&message).is_some() {
            assert!(message.time.expect("time").seconds > 1_000_000, "a live flow");
            break;
        }
    }
}

/// `hubble observe --last N --follow`: the N newest flows of the cluster, then live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_with_number_sends_the_newest_n_of_the_cluster_then_live_flows() {
    let [a, b, c] = interleaved_agents().await;
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b, &c])]).await;
    until_connected(&relay, 3).await;
    let request = GetFlowsRequest {
        number: 4,
        follow: true,
        ..Default::default()
    };
    let mut stream = get_flows(&relay, request).await;
    let first = next(&mut stream).await.expect("node status");
    assert_eq!(status_of(&first).map(|s| s.0), Some(NodeState::NodeConnected));
    b.emit(Timestamp::now());
    let mut flows = Vec::new();
    while flows.len() < 5 {
        let message = next(&mut stream).await.expect("open stream");
        if flow_node(&message).is_some() {
            flows.push(message);
        }
    }
    assert_eq!(flow_seconds(&flows[..4]), [186, 187, 188, 189]);
    assert_eq!(flow_node(&flows[4]), Some("node-b"), "then the live flow");
}

/// hubble-relay leaves GetAgentEvents unimplemented; ours merges it like flows.
#[tokio::test]
async fn agent_events_of_every_node_are_merged_by_time_and_number_is_cluster_wide() {
    let agents = [
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
    ];
    for k in 0..10 {
        for (offset, agent) in agents.iter().enumerate() {
            agent.emit_agent_event(Timestamp {
                seconds: 500 + 2 * k + offset as i64,
                nanos: 0,
            });
        }
    }
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&agents[0], &agents[1]])]).await;
    until_connected(&relay, 2).await;
    let mut stream = client(&relay)
        .await
        .get_agent_events(GetAgentEventsRequest {
            number: 6,
            ..Default::default()
        })
        .await
        .expect("GetAgentEvents")
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no event within 10 s")
        .expect("stream ok")
    {
        events.push(event);
    }
    let seen: Vec<(i64, &str)> = events
        .iter()
        .map(|e| (e.time.expect("time").seconds, e.node_name.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (514, "node-a"),
            (515, "node-b"),
            (516, "node-a"),
            (517, "node-b"),
            (518, "node-a"),
            (519, "node-b")
        ]
    );
}
