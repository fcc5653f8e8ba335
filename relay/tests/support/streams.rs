//! Reading merged streams in tests: node status, flows, times.

use std::time::Duration;

use sightline_proto::Timestamp;
use sightline_proto::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};
use sightline_proto::relay::NodeState;
use tonic::Streaming;

use super::agent::FakeAgent;

pub fn peers(agents: &[&FakeAgent]) -> String {
    agents
        .iter()
        .map(|a| format!("{}={}", a.name, a.address))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn next(stream: &mut Streaming<GetFlowsResponse>) -> Option<GetFlowsResponse> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no message within 10 s")
        .expect("stream ok")
}

pub fn status_of(response: &GetFlowsResponse) -> Option<(NodeState, Vec<String>)> {
    match &response.response_types {
        Some(ResponseTypes::NodeStatus(s)) => {
            let mut names = s.node_names.clone();
            names.sort();
            Some((NodeState::try_from(s.state_change).expect("known node state"), names))
        }
        _ => None,
    }
}

pub fn flow_node(response: &GetFlowsResponse) -> Option<&str> {
    match &response.response_types {
        Some(ResponseTypes::Flow(flow)) => Some(&flow.node_name),
        _ => None,
    }
}

pub fn nanos(response: &GetFlowsResponse) -> i128 {
    response.time.map_or(0, |t| t.as_unix_nanos())
}

/// Three agents with histories whose times interleave: a at 100, 103, ...; b at 101, ...; c at 102, ...
pub async fn interleaved_agents() -> [FakeAgent; 3] {
    let agents = [
        FakeAgent::start("node-a", &["default"]).await,
        FakeAgent::start("node-b", &["default"]).await,
        FakeAgent::start("node-c", &["default"]).await,
    ];
    for k in 0..30 {
        for (offset, agent) in agents.iter().enumerate() {
            agent.emit(Timestamp {
                seconds: 100 + 3 * k + offset as i64,
                nanos: 0,
            });
        }
    }
    agents
}

pub async fn collect_all(stream: &mut Streaming<GetFlowsResponse>) -> Vec<GetFlowsResponse> {
    let mut all = Vec::new();
    while let Some(message) = next(stream).await {
        all.push(message);
    }
    all
}

/// Reads `stream` until a node status `state` naming exactly `node`; fails after `within`.
pub async fn until_status(stream: &mut Streaming<GetFlowsResponse>, state: NodeState, node: &str, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = next(stream).await.expect("open stream");
        if status_of(&message) == Some((state, vec![node.to_owned()])) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {state:?} for {node} within {within:?}"
        );
    }
}
