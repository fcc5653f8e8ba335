//! Peers that refuse, hang, leave the cluster, or lose their peer service: what a
//! client of the relay sees, and that nobody waits forever.

mod support;

use std::time::Duration;

use sightline_proto::Timestamp;
use sightline_proto::observer::{GetFlowsRequest, GetFlowsResponse};
use sightline_proto::peer::{ChangeNotification, ChangeNotificationType};
use sightline_proto::relay::NodeState;
use support::agent::{FakeAgent, FlowsAnswer};
use support::peer_service::FakePeerService;
use support::streams::{collect_all, flow_node, next, peers, status_of, until_status};
use support::{eventually, follow, get_flows, relay, until_connected};
use tokio::time::Instant;
use tonic::{Code, Status, Streaming};

fn node_errors(messages: &[GetFlowsResponse]) -> Vec<(Vec<String>, String)> {
    messages
        .iter()
        .filter_map(|m| match &m.response_types {
            Some(sightline_proto::observer::get_flows_response::ResponseTypes::NodeStatus(s))
                if s.state_change == i32::from(NodeState::NodeError) =>
            {
                Some((s.node_names.clone(), s.message.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Reads `stream` for at least `duration` and until `enough` holds of what was
/// read; fails after 30 s.
async fn read_until(
    stream: &mut Streaming<GetFlowsResponse>,
    duration: Duration,
    enough: impl Fn(&[GetFlowsResponse]) -> bool,
) -> Vec<GetFlowsResponse> {
    let (started, deadline) = (Instant::now(), Instant::now() + Duration::from_secs(30));
    let mut seen = Vec::new();
    while started.elapsed() < duration || !enough(&seen) {
        assert!(
            Instant::now() < deadline,
            "the stream stalled after {} messages",
            seen.len()
        );
        if let Ok(message) = tokio::time::timeout(Duration::from_millis(100), stream.message()).await {
            seen.push(message.expect("stream ok").expect("stream open"));
        }
    }
    seen
}

fn flows_from(messages: &[GetFlowsResponse], node: &str) -> usize {
    messages.iter().filter(|m| flow_node(m) == Some(node)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_rejects_the_request_is_reported_once_while_the_others_stream() {
    let (a, b) = (
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
    );
    a.emit_every(Duration::from_millis(10), Duration::ZERO);
    b.answer_flows_with(FlowsAnswer::Reject(Status::invalid_argument(
        "unknown filter field on this node",
    )));
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b])]).await;
    until_connected(&relay, 2).await;
    let mut stream = follow(&relay).await;
    // The relay looks for peers to (re)join every second: three chances to repeat
    // itself, and node-a's flows meanwhile (however slowly they arrive).
    let seen = read_until(&mut stream, Duration::from_millis(3500), |seen| {
        flows_from(seen, "node-a") > 100
    })
    .await;
    assert_eq!(
        node_errors(&seen),
        [(
            vec!["node-b".to_owned()],
            "unknown filter field on this node".to_owned()
        )],
        "one NODE_ERROR for node-b"
    );
    assert_eq!(b.flows_calls(), 1, "not asked again within the retry interval");
    let connected: Vec<_> = seen
        .iter()
        .filter_map(status_of)
        .filter(|(state, _)| *state == NodeState::NodeConnected)
        .collect();
    assert_eq!(connected.len(), 1, "no NODE_CONNECTED flapping: {connected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_every_peer_rejects_ends_with_their_invalid_argument() {
    let (a, b) = (
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
    );
    for agent in [&a, &b] {
        agent.answer_flows_with(FlowsAnswer::Reject(Status::invalid_argument(
            "invalid filter destination_port=\"http\"",
        )));
    }
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b])]).await;
    until_connected(&relay, 2).await;
    for follow in [false, true] {
        let mut stream = get_flows(
            &relay,
            GetFlowsRequest {
                follow,
                ..Default::default()
            },
        )
        .await;
        let status = loop {
            match tokio::time::timeout(Duration::from_secs(5), stream.message())
                .await
                .expect("an answer within 5 s")
            {
                Ok(Some(message)) => assert!(flow_node(&message).is_none(), "no flows expected"),
                Ok(None) => panic!("stream ended without the agents' error (follow={follow})"),
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), Code::InvalidArgument, "follow={follow}");
        assert!(status.message().contains("destination_port"), "{}", status.message());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_sending_does_not_hold_up_a_bounded_request() {
    let (a, b) = (
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
    );
    for s in 0..5 {
        a.emit(Timestamp {
            seconds: 1_000 + s,
            nanos: 0,
        });
    }
    b.answer_flows_with(FlowsAnswer::Hang);
    // The test relay's dial timeout, which also bounds silence, is 1 s.
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b])]).await;
    until_connected(&relay, 2).await;
    for number in [3, 0] {
        let mut stream = get_flows(
            &relay,
            GetFlowsRequest {
                number,
                ..Default::default()
            },
        )
        .await;
        // Node-b never answers: the request ends because the relay stops waiting
        // for it (after its 1 s dial timeout), long before this deadline.
        let all = tokio::time::timeout(Duration::from_secs(20), collect_all(&mut stream))
            .await
            .unwrap_or_else(|_| panic!("number={number}: the silent peer held up the request"));
        assert!(
            all.iter()
                .any(|m| status_of(m) == Some((NodeState::NodeUnavailable, vec!["node-b".into()]))),
            "the silent peer is reported"
        );
        let flows = all.iter().filter(|m| flow_node(m).is_some()).count();
        assert_eq!(flows, if number == 0 { 5 } else { 3 });
    }
    eventually(
        Duration::from_secs(15),
        "the hanging upstream calls were not cancelled",
        || b.open_streams() == 0,
    )
    .await;
}

fn announced(agent: &FakeAgent) -> ChangeNotification {
    ChangeNotification {
        name: agent.name.clone(),
        address: agent.address.to_string(),
        r#type: ChangeNotificationType::PeerAdded.into(),
        tls: None,
    }
}

fn deleted(agent: &FakeAgent) -> ChangeNotification {
    ChangeNotification {
        name: agent.name.clone(),
        r#type: ChangeNotificationType::PeerDeleted.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_removed_from_the_cluster_is_reported_gone_and_its_stream_closed() {
    let (a, b) = (
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
    );
    for agent in [&a, &b] {
        agent.emit_every(Duration::from_millis(10), Duration::ZERO);
    }
    let service = FakePeerService::start(vec![announced(&a), announced(&b)]).await;
    let relay = relay(&["--disable-client-tls", "--peer-service", &service.address.to_string()]).await;
    until_connected(&relay, 2).await;
    let mut stream = follow(&relay).await;
    while b.open_streams() != 1 {
        next(&mut stream).await.expect("open");
    }
    service.announce(deleted(&b));
    until_status(&mut stream, NodeState::NodeGone, "node-b", Duration::from_secs(15)).await;
    eventually(Duration::from_secs(15), "node-b's upstream stream still open", || {
        b.open_streams() == 0
    })
    .await;
    // Nothing node-b still had in flight is forwarded after it was gone, while
    // node-a goes on.
    let later = read_until(&mut stream, Duration::ZERO, |seen| flows_from(seen, "node-a") >= 20).await;
    assert_eq!(flows_from(&later, "node-b"), 0);
}

/// A node that is down when it is deleted is reported gone too, not only the ones
/// with a stream open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_deleted_while_down_is_reported_gone() {
    let (a, mut b) = (
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
    );
    a.emit_every(Duration::from_millis(10), Duration::ZERO);
    let service = FakePeerService::start(vec![announced(&a), announced(&b)]).await;
    let relay = relay(&["--disable-client-tls", "--peer-service", &service.address.to_string()]).await;
    until_connected(&relay, 2).await;
    let mut stream = follow(&relay).await;
    b.kill();
    until_status(
        &mut stream,
        NodeState::NodeUnavailable,
        "node-b",
        Duration::from_secs(10),
    )
    .await;
    service.announce(deleted(&b));
    until_status(&mut stream, NodeState::NodeGone, "node-b", Duration::from_secs(15)).await;
}

/// A call that fails as if the peer were gone (here: the agent answers
/// UNAVAILABLE) while the connection stays healthy: the peer is asked again later,
/// instead of never, since the pool never sees it drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_call_failed_on_a_healthy_connection_is_asked_again() {
    let (a, b) = (
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
    );
    a.emit_every(Duration::from_millis(10), Duration::ZERO);
    b.emit_every(Duration::from_millis(10), Duration::ZERO);
    b.answer_flows_with(FlowsAnswer::Reject(Status::unavailable("overloaded, try later")));
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b])]).await;
    until_connected(&relay, 2).await;
    let mut stream = follow(&relay).await;
    until_status(
        &mut stream,
        NodeState::NodeUnavailable,
        "node-b",
        Duration::from_secs(10),
    )
    .await;
    b.answer_flows_with(FlowsAnswer::Serve);
    let failed = Instant::now();
    let mut reconnected = false;
    loop {
        let message = next(&mut stream).await.expect("open");
        reconnected |= status_of(&message) == Some((NodeState::NodeConnected, vec!["node-b".into()]));
        if reconnected && flow_node(&message) == Some("node-b") {
            break;
        }
        assert!(failed.elapsed() < Duration::from_secs(15), "node-b never asked again");
    }
}

fn names(relay: &sightline_relay::app::RunningRelay) -> Vec<String> {
    let mut names: Vec<String> = relay.pool.snapshot().into_iter().map(|p| p.info.name).collect();
    names.sort();
    names
}

async fn until_names(relay: &sightline_relay::app::RunningRelay, want: &[&str], within: Duration) {
    eventually(within, &format!("peers other than {want:?}"), || names(relay) == want).await;
}

/// The peer service is served by an agent; when it restarts, the relay re-dials
/// soon (the backoff starts again at 1 s after a stream that worked), takes in
/// peers announced meanwhile, and forgets peers deleted while it was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_peer_service_returns_the_relay_catches_up_with_the_cluster() {
    let (a, b, c) = (
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
        FakeAgent::start("node-c", &[]).await,
    );
    let mut service = FakePeerService::start(vec![announced(&a), announced(&b)]).await;
    let relay = relay(&[
        "--disable-client-tls",
        "--peer-service",
        &service.address.to_string(),
        "--retry-timeout",
        "60s",
    ])
    .await;
    until_connected(&relay, 2).await;

    // A first outage that outlasts the first re-dial (after about 1 s; the next
    // comes 2 s later), so the backoff grows to 4 s...
    service.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = service.notify_calls();
    service.restart(vec![announced(&a), announced(&b)]).await;
    // ...then a stream that works for more than the 2 s that make a session stable,
    // counted from when the relay is back (its re-dial time varies by ±20 %).
    eventually(
        Duration::from_secs(30),
        "the relay never dialled the peer service again",
        || service.notify_calls() > calls,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A second, short one: re-dialled after 1 s (±20 %), not after the 4 s (±20 %)
    // the first reached.
    service.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    service.restart(vec![announced(&a), announced(&c)]).await;
    until_names(&relay, &["node-a", "node-b", "node-c"], Duration::from_millis(2800)).await;
    // node-b was not announced again: gone once the new stream had its chance.
    until_names(&relay, &["node-a", "node-c"], Duration::from_secs(15)).await;
    until_connected(&relay, 2).await;
}
