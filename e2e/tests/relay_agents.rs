//! The relay in front of three real agent processes (synthetic flow source, loopback):
//! a node killed with SIGKILL is reported within 2 s while the others keep flowing,
//! and is picked up again when it comes back.

mod binaries;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use binaries::{binary, free_port};
use sightline_e2e::demo::Process;
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes};
use sightline_proto::relay::NodeState;
use tonic::Streaming;

struct Cluster {
    dir: PathBuf,
    ports: Vec<u16>,
}

impl Cluster {
    fn peers(&self) -> String {
        self.ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("node-{i}=127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn agent(&self, i: usize) -> Process {
        let mut command = Command::new(binary("sightline-agent"));
        command.args([
            "--node-name",
            &format!("node-{i}"),
            "--listen-address",
            &format!("127.0.0.1:{}", self.ports[i]),
            "--disable-server-tls",
            "--socket-path",
            &self.dir.join(format!("node-{i}.sock")).to_string_lossy(),
            "--peers",
            &self.peers(),
            "--synthetic-flows-per-second",
            "200",
        ]);
        Process::spawn(&format!("node-{i}"), command, &self.dir).expect("agent starts")
    }
}

fn status(response: &GetFlowsResponse) -> Option<(NodeState, Vec<String>)> {
    match &response.response_types {
        Some(ResponseTypes::NodeStatus(s)) => Some((NodeState::try_from(s.state_change).ok()?, s.node_names.clone())),
        _ => None,
    }
}

fn flow_node(response: &GetFlowsResponse) -> Option<String> {
    match &response.response_types {
        Some(ResponseTypes::Flow(flow)) => Some(flow.node_name.clone()),
        _ => None,
    }
}

async fn next(stream: &mut Streaming<GetFlowsResponse>) -> GetFlowsResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a message within 10 s")
        .expect("stream ok")
        .expect("stream open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_survives_a_killed_agent_and_picks_it_up_again() {
    let dir = std::env::temp_dir().join(format!("sightline-relay-agents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cluster = Cluster {
        dir: dir.clone(),
        ports: vec![free_port(), free_port(), free_port()],
    };
    let mut agents: Vec<Process> = (0..3).map(|i| cluster.agent(i)).collect();

    let relay_port = free_port();
    let mut relay = Command::new(binary("sightline-relay"));
    relay.args([
        "--listen-address",
        &format!("127.0.0.1:{relay_port}"),
        "--disable-server-tls",
        "--disable-client-tls",
        "--peer-service",
        &format!("127.0.0.1:{}", cluster.ports[0]),
        "--health-listen-address",
        "",
        "--metrics-listen-address",
        "",
        "--retry-timeout",
        "1s",
    ]);
    let _relay = Process::spawn("relay", relay, &dir).expect("relay starts");

    // Wait until the relay knows all three nodes (discovered through node-0's peer service).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        assert!(Instant::now() < deadline, "relay never connected all three agents");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{relay_port}"))
            .expect("uri")
            .connect()
            .await
        else {
            continue;
        };
        let mut client = ObserverClient::new(channel);
        let Ok(response) = client
            .get_flows(GetFlowsRequest {
                follow: true,
                ..Default::default()
            })
            .await
        else {
            continue;
        };
        let mut stream = response.into_inner();
        let first = next(&mut stream).await;
        if status(&first).is_some_and(|(state, names)| state == NodeState::NodeConnected && names.len() == 3) {
            break stream;
        }
    };

    agents[1].kill_hard();
    let killed = Instant::now();
    loop {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no NODE_UNAVAILABLE for node-1 within 30 s"
        );
        let message = next(&mut stream).await;
        if status(&message) == Some((NodeState::NodeUnavailable, vec!["node-1".to_owned()])) {
            break;
        }
    }

    // The other two keep streaming, and nothing more comes from the dead one.
    let mut seen = std::collections::HashSet::new();
    let unavailable = Instant::now();
    while !(seen.contains("node-0") && seen.contains("node-2")) {
        assert!(
            unavailable.elapsed() < Duration::from_secs(30),
            "node-0 and node-2 stopped streaming: {seen:?}"
        );
        seen.extend(flow_node(&next(&mut stream).await));
        assert!(
            !seen.contains("node-1"),
            "a flow from the killed node-1 after NODE_UNAVAILABLE"
        );
    }

    agents[1] = cluster.agent(1);
    let restarted = Instant::now();
    let mut reconnected = false;
    loop {
        assert!(
            restarted.elapsed() < Duration::from_secs(20),
            "node-1 not back after 20 s"
        );
        let message = next(&mut stream).await;
        if status(&message) == Some((NodeState::NodeConnected, vec!["node-1".to_owned()])) {
            reconnected = true;
        }
        if reconnected && flow_node(&message).as_deref() == Some("node-1") {
            break;
        }
    }
    drop(agents);
    let _ = std::fs::remove_dir_all(&dir);
}
