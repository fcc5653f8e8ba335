//! docs/relay.md: "Peers that join or return during `--follow` are asked for new
//! flows only, so a reconnecting agent does not replay flows the client already
//! saw." Here the agent keeps its history across the dropped connection, so a
//! relay that re-sent the client's `--last N` request would replay it.

mod support;

use std::time::{Duration, SystemTime};

use sightline_proto::Timestamp;
use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::relay::NodeState;
use support::agent::FakeAgent;
use support::streams::{flow_node, nanos, next, status_of, until_status};
use support::{eventually, get_flows, relay, until_connected};

fn seconds_ago(seconds: u64) -> Timestamp {
    (SystemTime::now() - Duration::from_secs(seconds)).into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_returning_with_its_history_under_last_n_follow_is_asked_for_new_flows_only() {
    let mut agent = FakeAgent::start("node-a", &[]).await;
    let history: Vec<Timestamp> = (0..10).rev().map(|s| seconds_ago(60 + s)).collect();
    for time in &history {
        agent.emit(*time);
    }
    let relay = relay(&["--disable-client-tls", "--peers", &format!("node-a={}", agent.address)]).await;
    until_connected(&relay, 1).await;
    let request = GetFlowsRequest {
        number: 3,
        follow: true,
        ..Default::default()
    };
    let mut stream = get_flows(&relay, request.clone()).await;

    // The newest three of the history, then a live flow.
    let mut delivered = Vec::new();
    while delivered.len() < 3 {
        let message = next(&mut stream).await.expect("open stream");
        if flow_node(&message).is_some() {
            delivered.push(nanos(&message));
        }
    }
    let newest_three: Vec<i128> = history[7..].iter().map(Timestamp::as_unix_nanos).collect();
    assert_eq!(delivered, newest_three);
    let live = seconds_ago(0);
    agent.emit(live);
    loop {
        let message = next(&mut stream).await.expect("open stream");
        if flow_node(&message).is_some() {
            assert_eq!(nanos(&message), live.as_unix_nanos(), "the live flow, nothing else");
            delivered.push(nanos(&message));
            break;
        }
    }

    // The connection drops; the agent comes back on the same address with its ring.
    agent.kill();
    until_status(
        &mut stream,
        NodeState::NodeUnavailable,
        "node-a",
        Duration::from_secs(10),
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the dropped stream stays open at the agent",
        || agent.open_streams() == 0,
    )
    .await;
    agent.rejoin().await;
    until_status(&mut stream, NodeState::NodeConnected, "node-a", Duration::from_secs(30)).await;

    // Whatever the agent sends now, nothing already delivered comes again. Emit
    // once the relay's new call is streaming (a replayed history would already be
    // on its way), so the flow cannot miss it.
    eventually(
        Duration::from_secs(10),
        "the rejoin call never reached the agent",
        || agent.open_streams() == 1,
    )
    .await;
    let after_rejoin = seconds_ago(0);
    agent.emit(after_rejoin);
    loop {
        let message = next(&mut stream).await.expect("open stream");
        assert_eq!(status_of(&message), None, "no further status while node-a streams");
        if flow_node(&message).is_some() {
            assert!(
                !delivered.contains(&nanos(&message)),
                "a flow delivered before the rejoin came again"
            );
            assert_eq!(nanos(&message), after_rejoin.as_unix_nanos());
            break;
        }
    }
    let requests = agent.flows_requests();
    assert_eq!(requests.len(), 2, "one call for the client's request, one on rejoin");
    assert_eq!(requests[0], request, "the first call carries the client's request");
    assert_eq!(
        requests[1],
        GetFlowsRequest {
            follow: true,
            ..Default::default()
        },
        "on rejoin the relay asks for new flows only: no number, first or since"
    );
    relay.shutdown().await;
}
