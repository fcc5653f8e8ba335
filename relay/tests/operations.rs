//! The relay as operators run it: discovery through the peer service, mutual TLS
//! to agents, unary RPCs aggregated over the cluster, metrics and shutdown.

mod support;

use std::time::Duration;

use sightline_proto::observer::{
    GetFlowsRequest, GetNamespacesRequest, GetNodesRequest, ServerStatusRequest, get_flows_response::ResponseTypes,
};
use sightline_proto::peer::{ChangeNotification, ChangeNotificationType, Tls};
use sightline_proto::relay::NodeState;
use support::agent::FakeAgent;
use support::certs::{Ca, agent_server_config};
use support::peer_service::FakePeerService;
use support::{client, eventually, follow, relay, until_connected};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn added(name: &str, address: std::net::SocketAddr, server_name: Option<&str>) -> ChangeNotification {
    ChangeNotification {
        name: name.into(),
        address: address.to_string(),
        r#type: ChangeNotificationType::PeerAdded.into(),
        tls: server_name.map(|s| Tls { server_name: s.into() }),
    }
}

#[tokio::test]
async fn unary_rpcs_aggregate_the_cluster() {
    let a = FakeAgent::start("node-a", &["default", "shop"]).await;
    let mut b = FakeAgent::start("node-b", &["shop", "kube-system"]).await;
    for agent in [&a, &b] {
        for s in 0..3 {
            agent.emit(sightline_proto::Timestamp { seconds: s, nanos: 0 });
        }
    }
    let peers = format!("node-a={},node-b={}", a.address, b.address);
    let relay = relay(&["--disable-client-tls", "--peers", &peers]).await;
    until_connected(&relay, 2).await;
    let mut client = client(&relay).await;

    let status = client
        .server_status(ServerStatusRequest {})
        .await
        .expect("ServerStatus")
        .into_inner();
    assert_eq!((status.num_flows, status.max_flows, status.seen_flows), (6, 8190, 6));
    assert_eq!(status.num_connected_nodes.map(|v| v.value), Some(2));
    assert_eq!(status.num_unavailable_nodes.map(|v| v.value), Some(0));
    assert!(status.version.starts_with("sightline-relay v"), "{}", status.version);
    assert!((status.flows_rate - 3.0).abs() < 1e-9);

    let namespaces = client
        .get_namespaces(GetNamespacesRequest {})
        .await
        .expect("GetNamespaces")
        .into_inner();
    let names: Vec<_> = namespaces.namespaces.iter().map(|n| n.namespace.as_str()).collect();
    assert_eq!(names, ["default", "kube-system", "shop"]);

    let nodes = client
        .get_nodes(GetNodesRequest {})
        .await
        .expect("GetNodes")
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 2);
    assert!(nodes.iter().all(|n| n.state == i32::from(NodeState::NodeConnected)));
    assert_eq!(nodes[0].version, "fake node-a");
    assert_eq!(nodes[1].address, b.address.to_string());

    b.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client
            .server_status(ServerStatusRequest {})
            .await
            .expect("ServerStatus")
            .into_inner();
        if status.num_unavailable_nodes.map(|v| v.value) == Some(1) {
            assert_eq!(status.unavailable_nodes, ["node-b"]);
            assert_eq!(status.num_connected_nodes.map(|v| v.value), Some(1));
            break;
        }
        assert!(Instant::now() < deadline, "killed node never reported unavailable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_peers_over_mutual_tls_are_checked_against_hubbles_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Sightline test CA");
    let ca_file = ca.write_ca(dir.path(), "ca.crt");
    let server = ca.issue(dir.path(), "server", &["*.default.hubble-grpc.cilium.io"]);
    let relay_client = ca.issue(dir.path(), "relay", &["client.hubble-relay.cilium.io"]);
    let wrong_cluster = ca.issue(dir.path(), "other", &["*.other.hubble-grpc.cilium.io"]);
    let a = FakeAgent::start_with_tls("node-a", &[], Some(agent_server_config(&server, &ca_file))).await;
    let imposter = FakeAgent::start_with_tls("node-x", &[], Some(agent_server_config(&wrong_cluster, &ca_file))).await;
    let peers = format!("node-a={},node-x={}", a.address, imposter.address);
    let relay = relay(&[
        "--peers",
        &peers,
        "--tls-hubble-server-ca-files",
        ca_file.to_str().expect("utf-8"),
        "--tls-hubble-client-cert-file",
        relay_client.cert.to_str().expect("utf-8"),
        "--tls-hubble-client-key-file",
        relay_client.key.to_str().expect("utf-8"),
    ])
    .await;
    until_connected(&relay, 1).await;
    // A peer the relay never dialled is unavailable too: wait until it was dialled
    // and its certificate refused, which only a dial produces.
    eventually(Duration::from_secs(10), "the relay never dialled the imposter", || {
        imposter.failed_handshakes() >= 1
    })
    .await;
    let nodes = client(&relay)
        .await
        .get_nodes(GetNodesRequest {})
        .await
        .expect("GetNodes")
        .into_inner()
        .nodes;
    let state = |name: &str| {
        nodes.iter().find(|n| n.name == name).map(|n| {
            let tls = n.tls.clone().expect("tls");
            (n.state, tls.enabled, tls.server_name)
        })
    };
    assert_eq!(
        state("node-a"),
        Some((
            NodeState::NodeConnected.into(),
            true,
            "node-a.default.hubble-grpc.cilium.io".into()
        ))
    );
    assert_eq!(
        state("node-x"),
        Some((
            NodeState::NodeUnavailable.into(),
            true,
            "node-x.default.hubble-grpc.cilium.io".into()
        )),
        "certificate for another cluster"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_come_from_notify_over_mutual_tls_and_leave_when_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Sightline test CA");
    let ca_file = ca.write_ca(dir.path(), "ca.crt");
    let server = ca.issue(dir.path(), "server", &["*.default.hubble-grpc.cilium.io"]);
    let relay_client = ca.issue(dir.path(), "relay", &["client.hubble-relay.cilium.io"]);
    let wrong_cluster = ca.issue(dir.path(), "other", &["*.other.hubble-grpc.cilium.io"]);
    let a = FakeAgent::start_with_tls("node-a", &[], Some(agent_server_config(&server, &ca_file))).await;
    let b = FakeAgent::start_with_tls("node-b", &[], Some(agent_server_config(&server, &ca_file))).await;
    let imposter = FakeAgent::start_with_tls("node-x", &[], Some(agent_server_config(&wrong_cluster, &ca_file))).await;
    a.emit_every(Duration::from_millis(10), Duration::ZERO);

    let socket = dir.path().join("hubble.sock");
    let service = FakePeerService::start_unix(
        &socket,
        vec![
            added("node-a", a.address, Some("node-a.default.hubble-grpc.cilium.io")),
            added("node-b", b.address, Some("node-b.default.hubble-grpc.cilium.io")),
            added("node-x", imposter.address, Some("node-x.default.hubble-grpc.cilium.io")),
        ],
    )
    .await;
    let relay = relay(&[
        "--peer-service",
        &format!("unix://{}", socket.display()),
        "--tls-hubble-server-ca-files",
        ca_file.to_str().expect("utf-8"),
        "--tls-hubble-client-cert-file",
        relay_client.cert.to_str().expect("utf-8"),
        "--tls-hubble-client-key-file",
        relay_client.key.to_str().expect("utf-8"),
    ])
    .await;
    until_connected(&relay, 2).await;
    let mut client = client(&relay).await;
    let nodes = client
        .get_nodes(GetNodesRequest {})
        .await
        .expect("GetNodes")
        .into_inner()
        .nodes;
    let state = |name: &str| {
        nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| (n.state, n.tls.clone().expect("tls").enabled))
    };
    assert_eq!(state("node-a"), Some((NodeState::NodeConnected.into(), true)));
    assert_eq!(
        state("node-x"),
        Some((NodeState::NodeUnavailable.into(), true)),
        "certificate for another cluster"
    );

    let mut stream = client
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("GetFlows")
        .into_inner();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("flow")
            .expect("ok");
        if let Some(ResponseTypes::Flow(flow)) = message.and_then(|m| m.response_types) {
            assert_eq!(flow.node_name, "node-a");
            break;
        }
    }

    service.announce(ChangeNotification {
        name: "node-b".into(),
        r#type: ChangeNotificationType::PeerDeleted.into(),
        ..Default::default()
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let nodes = client
            .get_nodes(GetNodesRequest {})
            .await
            .expect("GetNodes")
            .into_inner()
            .nodes;
        if !nodes.iter().any(|n| n.name == "node-b") {
            break;
        }
        assert!(Instant::now() < deadline, "deleted peer still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_path_ends_open_follow_streams_within_five_seconds() {
    let a = FakeAgent::start("node-a", &[]).await;
    a.emit_every(Duration::from_millis(10), Duration::ZERO);
    let relay = relay(&["--disable-client-tls", "--peers", &format!("node-a={}", a.address)]).await;
    until_connected(&relay, 1).await;
    let mut stream = follow(&relay).await;
    stream.message().await.expect("first message");
    let started = Instant::now();
    relay.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "client stream still open after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_peers_and_forwarded_flows() {
    let a = FakeAgent::start("node-a", &[]).await;
    for s in 0..4 {
        a.emit(sightline_proto::Timestamp { seconds: s, nanos: 0 });
    }
    let relay = relay(&[
        "--disable-client-tls",
        "--peers",
        &format!("node-a={},gone=127.0.0.1:1", a.address),
        "--sort-buffer-len-max",
        "3",
    ])
    .await;
    until_connected(&relay, 1).await;
    // `number` selects the window apart from the sort buffer: no evictions. The
    // whole ring goes through it: one held back when full, the rest flushed at the end.
    for number in [4, 0] {
        let mut stream = client(&relay)
            .await
            .get_flows(GetFlowsRequest {
                number,
                ..Default::default()
            })
            .await
            .expect("GetFlows")
            .into_inner();
        while stream.message().await.expect("ok").is_some() {}
    }

    let address = relay.metrics_address.expect("metrics enabled");
    let mut socket = tokio::net::TcpStream::connect(address).await.expect("connect");
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut body = String::new();
    socket.read_to_string(&mut body).await.expect("response");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    // gRPC connectivity states, as hubble-relay labels them.
    for expected in [
        "hubble_relay_pool_peer_connection_status{status=\"READY\"} 1",
        "hubble_relay_pool_peer_connection_status{status=\"TRANSIENT_FAILURE\"} 1",
        "hubble_relay_flows_forwarded_total 8",
        "hubble_relay_sort_buffer_evictions_total{reason=\"full\"} 1",
        "hubble_relay_sort_buffer_evictions_total{reason=\"flush\"} 3",
        "hubble_relay_sort_buffer_evictions_total{reason=\"timeout\"} 0",
        // go-grpc-prometheus' names and labels, unprefixed, for the two GetFlows calls.
        r#"grpc_server_started_total{grpc_method="GetFlows",grpc_service="observer.Observer",grpc_type="server_stream"} 2"#,
        r#"grpc_server_handled_total{grpc_code="OK",grpc_method="GetFlows",grpc_service="observer.Observer",grpc_type="server_stream"} 2"#,
        r#"grpc_server_msg_received_total{grpc_method="GetFlows",grpc_service="observer.Observer",grpc_type="server_stream"} 2"#,
        r#"grpc_server_started_total{grpc_method="ServerStatus",grpc_service="observer.Observer",grpc_type="unary"} 0"#,
    ] {
        assert!(body.contains(expected), "{expected} missing from:\n{body}");
    }
}
