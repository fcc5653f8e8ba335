//! Cluster-wide GetFlows through the relay, against three fake agents on loopback.

mod support;

use std::time::Duration;

use sightline_proto::Timestamp;
use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::relay::NodeState;
use support::agent::FakeAgent;
use support::streams::{collect_all, flow_node, interleaved_agents, nanos, next, peers, status_of};
use support::{client, eventually, follow, relay, until_connected};
use tokio::time::Instant;

#[tokio::test]
async fn number_means_the_newest_n_flows_of_the_whole_cluster() {
    let [a, b, c] = interleaved_agents().await;
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b, &c])]).await;
    until_connected(&relay, 3).await;
    let request = GetFlowsRequest {
        number: 10,
        ..Default::default()
    };
    let mut stream = client(&relay)
        .await
        .get_flows(request)
        .await
        .expect("GetFlows")
        .into_inner();
    let all = collect_all(&mut stream).await;
    assert_eq!(
        status_of(&all[0]),
        Some((
            NodeState::NodeConnected,
            vec!["node-a".into(), "node-b".into(), "node-c".into()]
        ))
    );
    let seconds: Vec<i64> = all[1..].iter().map(|r| r.time.expect("time").seconds).collect();
    assert_eq!(
        seconds,
        (180..190).collect::<Vec<_>>(),
        "10 newest across nodes, in order (Hubble would send 30)"
    );
}

#[tokio::test]
async fn first_means_the_oldest_n_flows_of_the_whole_cluster() {
    let [a, b, c] = interleaved_agents().await;
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b, &c])]).await;
    until_connected(&relay, 3).await;
    let request = GetFlowsRequest {
        number: 5,
        first: true,
        ..Default::default()
    };
    let mut stream = client(&relay)
        .await
        .get_flows(request)
        .await
        .expect("GetFlows")
        .into_inner();
    let all = collect_all(&mut stream).await;
    let seconds: Vec<i64> = all
        .iter()
        .filter(|r| flow_node(r).is_some())
        .map(|r| r.time.expect("time").seconds)
        .collect();
    assert_eq!(seconds, [100, 101, 102, 103, 104]);
}

#[tokio::test]
async fn first_with_follow_is_invalid_argument() {
    let relay = relay(&["--disable-client-tls", "--peers", "x=127.0.0.1:1"]).await;
    let request = GetFlowsRequest {
        number: 5,
        first: true,
        follow: true,
        ..Default::default()
    };
    let status = client(&relay)
        .await
        .get_flows(request)
        .await
        .expect_err("must be refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("first"), "{}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_output_is_time_ordered_when_skew_is_below_the_drain_timeout() {
    let (a, b, c) = (
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
        FakeAgent::start("node-c", &[]).await,
    );
    a.emit_every(Duration::from_millis(5), Duration::ZERO);
    // node-b's flows arrive 400 ms after the time they carry, like a slow node.
    b.emit_every(Duration::from_millis(7), Duration::from_millis(400));
    c.emit_every(Duration::from_millis(11), Duration::ZERO);
    let relay = relay(&[
        "--disable-client-tls",
        "--peers",
        &peers(&[&a, &b, &c]),
        "--sort-buffer-len-max",
        "10000",
    ])
    .await;
    until_connected(&relay, 3).await;
    let mut stream = follow(&relay).await;
    let first = next(&mut stream).await.expect("status");
    assert_eq!(status_of(&first).map(|s| s.0), Some(NodeState::NodeConnected));
    let mut flows = Vec::new();
    while flows.len() < 300 {
        let message = next(&mut stream).await.expect("open stream");
        if flow_node(&message).is_some() {
            flows.push(message);
        }
    }
    let out_of_order = flows.windows(2).filter(|w| nanos(&w[0]) > nanos(&w[1])).count();
    assert_eq!(out_of_order, 0, "merged stream must be sorted by time");
    for node in ["node-a", "node-b", "node-c"] {
        assert!(flows.iter().any(|f| flow_node(f) == Some(node)), "{node} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_reported_quickly_and_picked_up_again_after_restart() {
    let (a, mut b, c) = (
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
        FakeAgent::start("node-c", &[]).await,
    );
    for agent in [&a, &b, &c] {
        agent.emit_every(Duration::from_millis(10), Duration::ZERO);
    }
    let relay = relay(&["--disable-client-tls", "--peers", &peers(&[&a, &b, &c])]).await;
    until_connected(&relay, 3).await;
    let mut stream = follow(&relay).await;
    // Let the stream run until every node has delivered, then kill node-b.
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 3 {
        if let Some(node) = flow_node(&next(&mut stream).await.expect("open")) {
            seen.insert(node.to_owned());
        }
    }
    b.kill();
    let killed = Instant::now();
    let mut last_flow_at = Instant::now();
    let mut max_gap = Duration::ZERO;
    let mut after_kill = std::collections::HashSet::new();
    loop {
        let message = next(&mut stream).await.expect("open");
        if let Some(node) = flow_node(&message) {
            max_gap = max_gap.max(last_flow_at.elapsed());
            last_flow_at = Instant::now();
            after_kill.insert(node.to_owned());
        }
        if status_of(&message) == Some((NodeState::NodeUnavailable, vec!["node-b".into()])) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "no NODE_UNAVAILABLE for node-b"
        );
    }
    assert!(
        killed.elapsed() < Duration::from_secs(2),
        "NODE_UNAVAILABLE after {:?}",
        killed.elapsed()
    );

    // The other two keep flowing without a gap: counted in flows, not in time.
    let mut nodes = std::collections::HashMap::<String, usize>::new();
    while nodes.get("node-a").is_none_or(|n| *n < 20) || nodes.get("node-c").is_none_or(|n| *n < 20) {
        let message = next(&mut stream).await.expect("open");
        if let Some(node) = flow_node(&message) {
            max_gap = max_gap.max(last_flow_at.elapsed());
            last_flow_at = Instant::now();
            *nodes.entry(node.to_owned()).or_default() += 1;
        }
    }
    assert!(!nodes.contains_key("node-b"), "flows from the killed node: {nodes:?}");
    assert!(max_gap < Duration::from_millis(1500), "flows stalled for {max_gap:?}");

    b.restart().await;
    b.emit_every(Duration::from_millis(10), Duration::ZERO);
    let restarted = Instant::now();
    let mut reconnected = false;
    loop {
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "node-b not back after 15 s"
        );
        let message = next(&mut stream).await.expect("open");
        if status_of(&message) == Some((NodeState::NodeConnected, vec!["node-b".into()])) {
            reconnected = true;
        }
        if reconnected && flow_node(&message) == Some("node-b") {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_accepts_and_never_answers_does_not_stall_anything() {
    let a = FakeAgent::start("node-a", &[]).await;
    for s in 0..5 {
        a.emit(Timestamp {
            seconds: 1_000 + s,
            nanos: 0,
        });
    }
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hole_address = hole.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    let relay = relay(&[
        "--disable-client-tls",
        "--peers",
        &format!("node-a={},hole={hole_address}", a.address),
    ])
    .await;
    until_connected(&relay, 1).await;

    let started = Instant::now();
    let mut stream = client(&relay)
        .await
        .get_flows(GetFlowsRequest {
            number: 3,
            ..Default::default()
        })
        .await
        .expect("GetFlows")
        .into_inner();
    let all = collect_all(&mut stream).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        all.iter()
            .any(|m| status_of(m) == Some((NodeState::NodeUnavailable, vec!["hole".into()])))
    );
    assert_eq!(all.iter().filter(|m| flow_node(m).is_some()).count(), 3);

    a.emit_every(Duration::from_millis(10), Duration::ZERO);
    let mut stream = follow(&relay).await;
    let mut flows = 0;
    while flows < 20 {
        if flow_node(&next(&mut stream).await.expect("open")).is_some() {
            flows += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_client_cancels_every_upstream_stream() {
    let agents = [
        FakeAgent::start("node-a", &[]).await,
        FakeAgent::start("node-b", &[]).await,
        FakeAgent::start("node-c", &[]).await,
    ];
    let relay = relay(&[
        "--disable-client-tls",
        "--peers",
        &peers(&[&agents[0], &agents[1], &agents[2]]),
    ])
    .await;
    until_connected(&relay, 3).await;
    let mut stream = follow(&relay).await;
    next(&mut stream).await.expect("node status");
    eventually(Duration::from_secs(5), "upstream streams not opened", || {
        agents.iter().all(|a| a.open_streams() == 1)
    })
    .await;
    drop(stream);
    eventually(Duration::from_secs(2), "upstream streams still open", || {
        agents.iter().all(|a| a.open_streams() == 0)
    })
    .await;
}
