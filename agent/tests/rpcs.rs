//! The other Observer RPCs, peer.Peer, health, reflection and TCP, through the real server.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use sightline_agent::event::Event;
use sightline_agent::peer::Peer;
use sightline_proto::Timestamp;
use sightline_proto::flow::{AgentEvent, DebugEvent, Endpoint};
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{
    GetAgentEventsRequest, GetDebugEventsRequest, GetNamespacesRequest, GetNodesRequest, Namespace, ServerStatusRequest,
};
use sightline_proto::peer::peer_client::PeerClient;
use sightline_proto::peer::{ChangeNotificationType, NotifyRequest};
use sightline_proto::relay::NodeState;
use support::{at, flow, start};
use tonic::Code;

#[tokio::test]
async fn server_status_counts_the_ring_and_reports_our_version() {
    let mut agent = start(&[]).await;
    for i in 0..5 {
        agent.publish_flow(flow(i, Timestamp::now().seconds));
    }
    agent.publish(Event::Agent {
        time: Timestamp::now(),
        event: Box::default(),
    });
    let mut client = agent.observer().await;
    let response = client.server_status(ServerStatusRequest {}).await.unwrap();
    let version = response
        .metadata()
        .get("hubble-server-version")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let status = response.into_inner();
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.version, format!("sightline v{version}"));
    assert_eq!((status.num_flows, status.max_flows, status.seen_flows), (6, 4095, 5));
    assert!(status.uptime_ns > 0);
    assert!(
        status.flows_rate > 0.0,
        "5 flows from this second: {}",
        status.flows_rate
    );
    assert!(status.num_connected_nodes.is_none());
}

#[tokio::test]
async fn namespaces_are_listed_sorted_by_cluster_then_name() {
    let mut agent = start(&[]).await;
    let mut f = flow(1, 1);
    f.source = Some(Box::new(Endpoint {
        namespace: "shop".into(),
        cluster_name: "default".into(),
        ..Default::default()
    }));
    f.destination = Some(Box::new(Endpoint {
        namespace: "db".into(),
        cluster_name: "east".into(),
        ..Default::default()
    }));
    agent.publish_flow(f);
    let mut g = flow(2, 2);
    g.source = Some(Box::new(Endpoint {
        namespace: "app".into(),
        ..Default::default()
    }));
    g.destination = None;
    agent.publish_flow(g);
    let mut client = agent.observer().await;
    let namespaces = client
        .get_namespaces(GetNamespacesRequest {})
        .await
        .unwrap()
        .into_inner()
        .namespaces;
    let ns = |c: &str, n: &str| Namespace {
        cluster: c.into(),
        namespace: n.into(),
    };
    assert_eq!(namespaces, vec![ns("", "app"), ns("", "shop"), ns("east", "db")]);
}

#[tokio::test]
async fn get_nodes_answers_with_this_node() {
    let agent = start(&["--cluster-name", "prod"]).await;
    let mut client = agent.observer().await;
    let nodes = client.get_nodes(GetNodesRequest {}).await.unwrap().into_inner().nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].name, "prod/node-1");
    assert_eq!(nodes[0].state, NodeState::NodeConnected as i32);
    assert_eq!(nodes[0].max_flows, 4095);
    assert!(!nodes[0].tls.as_ref().unwrap().enabled);
    // Not announced as a peer: the bound TCP address, with its real port, and a
    // client can dial it.
    let address = agent.tcp.unwrap().to_string();
    assert_eq!(nodes[0].address, address);
    let mut dialled = ObserverClient::connect(format!("http://{address}")).await.unwrap();
    dialled.server_status(ServerStatusRequest {}).await.unwrap();
}

#[tokio::test]
async fn get_nodes_reports_the_address_announced_to_peers() {
    let agent = start(&[
        "--cluster-name",
        "prod",
        "--peers",
        "node-1=10.0.0.1:4244,node-2=10.0.0.2:4244",
    ])
    .await;
    let mut client = agent.observer().await;
    let address = async |client: &mut ObserverClient<_>| {
        let nodes = client.get_nodes(GetNodesRequest {}).await.unwrap().into_inner().nodes;
        nodes[0].address.clone()
    };
    assert_eq!(address(&mut client).await, "10.0.0.1:4244");
    let peer = |n: &str, a: &str| Peer {
        node_name: n.into(),
        cluster_name: "prod".into(),
        address: a.into(),
    };
    agent.peers.replace(vec![peer("node-1", "10.0.0.9:4244")]);
    assert_eq!(address(&mut client).await, "10.0.0.9:4244");
    agent.peers.replace(vec![peer("node-2", "10.0.0.2:4244")]);
    assert_eq!(address(&mut client).await, agent.tcp.unwrap().to_string());
}

#[tokio::test]
async fn agent_and_debug_events_have_their_own_streams() {
    let mut agent = start(&[]).await;
    for i in 0..4 {
        agent.publish(Event::Agent {
            time: at(i),
            event: Box::new(AgentEvent {
                r#type: i as i32 + 2,
                ..Default::default()
            }),
        });
        agent.publish(Event::Debug {
            time: at(i),
            event: Box::new(DebugEvent {
                r#type: i as i32 + 1,
                ..Default::default()
            }),
        });
        agent.publish_flow(flow(i as u64, i));
    }
    let mut client = agent.observer().await;
    let mut agents = client
        .get_agent_events(GetAgentEventsRequest {
            number: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(event) = agents.message().await.unwrap() {
        assert_eq!(event.node_name, "node-1");
        got.push((event.agent_event.unwrap().r#type, event.time.unwrap().seconds));
    }
    assert_eq!(got, vec![(4, 2), (5, 3)]);

    let request = GetDebugEventsRequest {
        first: true,
        number: 1,
        ..Default::default()
    };
    let mut debug = client.get_debug_events(request).await.unwrap().into_inner();
    let first = debug.message().await.unwrap().unwrap();
    assert_eq!(first.debug_event.unwrap().r#type, 1);
    assert!(debug.message().await.unwrap().is_none());

    let err = client
        .get_agent_events(GetAgentEventsRequest {
            first: true,
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let mut follow = client
        .get_debug_events(GetDebugEventsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    agent.publish(Event::Debug {
        time: at(9),
        event: Box::new(DebugEvent {
            r#type: 7,
            ..Default::default()
        }),
    });
    let next = tokio::time::timeout(Duration::from_secs(5), follow.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.debug_event.unwrap().r#type, 7);
}

#[tokio::test]
async fn agent_and_debug_events_honour_since_and_until() {
    let mut agent = start(&[]).await;
    for i in 0..6 {
        agent.publish(Event::Agent {
            time: at(10 + i),
            event: Box::new(AgentEvent {
                r#type: i as i32,
                ..Default::default()
            }),
        });
        agent.publish(Event::Debug {
            time: at(10 + i),
            event: Box::new(DebugEvent {
                r#type: i as i32,
                ..Default::default()
            }),
        });
        agent.publish_flow(flow(i as u64, 10 + i));
    }
    let mut client = agent.observer().await;
    let agent_events = async |client: &mut ObserverClient<_>, request| {
        let mut stream = client.get_agent_events(request).await.unwrap().into_inner();
        let mut got = Vec::new();
        while let Some(event) = stream.message().await.unwrap() {
            got.push((event.agent_event.unwrap().r#type, event.time.unwrap().seconds));
        }
        got
    };
    let debug_events = async |client: &mut ObserverClient<_>, request| {
        let mut stream = client.get_debug_events(request).await.unwrap().into_inner();
        let mut got = Vec::new();
        while let Some(event) = stream.message().await.unwrap() {
            got.push((event.debug_event.unwrap().r#type, event.time.unwrap().seconds));
        }
        got
    };
    // Both ends are inclusive, as in Hubble.
    let request = GetAgentEventsRequest {
        since: Some(at(12)),
        until: Some(at(14)),
        ..Default::default()
    };
    assert_eq!(
        agent_events(&mut client, request).await,
        vec![(2, 12), (3, 13), (4, 14)]
    );
    let request = GetAgentEventsRequest {
        since: Some(at(14)),
        ..Default::default()
    };
    assert_eq!(agent_events(&mut client, request).await, vec![(4, 14), (5, 15)]);
    // With since, number counts forward from it.
    let request = GetAgentEventsRequest {
        since: Some(at(11)),
        number: 2,
        ..Default::default()
    };
    assert_eq!(agent_events(&mut client, request).await, vec![(1, 11), (2, 12)]);

    let request = GetDebugEventsRequest {
        until: Some(at(11)),
        ..Default::default()
    };
    assert_eq!(debug_events(&mut client, request).await, vec![(0, 10), (1, 11)]);
    // The last `number` before `until`.
    let request = GetDebugEventsRequest {
        until: Some(at(13)),
        number: 2,
        ..Default::default()
    };
    assert_eq!(debug_events(&mut client, request).await, vec![(2, 12), (3, 13)]);
    let request = GetDebugEventsRequest {
        since: Some(at(13)),
        until: Some(at(12)),
        ..Default::default()
    };
    assert_eq!(debug_events(&mut client, request).await, vec![]);
}

#[tokio::test]
async fn peers_are_announced_and_changes_streamed() {
    let agent = start(&["--peers", "node-1=10.0.0.1:4244,node-2=10.0.0.2:4244"]).await;
    let mut peers = PeerClient::new(agent.channel().await);
    let mut stream = peers.notify(NotifyRequest {}).await.unwrap().into_inner();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    };
    let (a, b) = (next().await, next().await);
    assert_eq!((a.name.as_str(), a.address.as_str()), ("node-1", "10.0.0.1:4244"));
    assert_eq!(
        (b.name.as_str(), b.r#type),
        ("node-2", ChangeNotificationType::PeerAdded as i32)
    );
    assert!(a.tls.is_none(), "no server name without TLS");

    let peer = |n: &str, a: &str| Peer {
        node_name: n.into(),
        cluster_name: "default".into(),
        address: a.into(),
    };
    agent
        .peers
        .replace(vec![peer("node-1", "10.0.0.9:4244"), peer("node-3", "10.0.0.3:4244")]);
    let mut changes = Vec::new();
    for _ in 0..3 {
        let n = next().await;
        changes.push((n.name, n.r#type, n.address));
    }
    changes.sort();
    assert_eq!(
        changes,
        vec![
            (
                "node-1".into(),
                ChangeNotificationType::PeerUpdated as i32,
                "10.0.0.9:4244".into()
            ),
            (
                "node-2".into(),
                ChangeNotificationType::PeerDeleted as i32,
                "10.0.0.2:4244".into()
            ),
            (
                "node-3".into(),
                ChangeNotificationType::PeerAdded as i32,
                "10.0.0.3:4244".into()
            ),
        ]
    );
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let agent = start(&[]).await;
    let mut health = HealthClient::new(agent.channel().await);
    for service in ["hubble.server.Observer", ""] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(status.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let mut reflection = ServerReflectionClient::new(agent.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"observer.Observer".to_string()) && names.contains(&"peer.Peer".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn the_unix_socket_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;

    let agent = start(&[]).await;
    let mode = std::fs::metadata(&agent.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600, "socket mode {mode:o}");
    let mut client = agent.observer().await;
    client.server_status(ServerStatusRequest {}).await.unwrap();
}

#[tokio::test]
async fn plaintext_tcp_serves_the_same_api() {
    let agent = start(&[]).await;
    let address = agent.tcp.unwrap();
    let mut client = ObserverClient::connect(format!("http://{address}")).await.unwrap();
    let status = client.server_status(ServerStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.max_flows, 4095);
}

#[tokio::test]
async fn a_lone_agent_announces_itself() {
    // No --peers and no Kubernetes (the test agent runs with --k8s-disabled).
    let agent = start(&[]).await;
    let mut peers = PeerClient::new(agent.channel().await);
    let mut stream = peers.notify(NotifyRequest {}).await.unwrap().into_inner();
    let only = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a notification")
        .unwrap()
        .expect("the agent itself");
    assert_eq!(only.r#type, ChangeNotificationType::PeerAdded as i32);
    assert_eq!(only.name, agent.node_name);
    assert_eq!(
        only.address,
        agent.tcp.expect("tcp").to_string(),
        "dialable where it listens"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), stream.message())
            .await
            .is_err(),
        "nobody else"
    );
}
