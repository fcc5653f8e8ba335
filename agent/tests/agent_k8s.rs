//! The agent as its binary runs it with `--manifests`: flows published into its
//! pipeline come out of GetFlows with pod metadata, the peer service announces the
//! manifests' Nodes, and AGENT_STARTED is on GetAgentEvents.
#![allow(clippy::unwrap_used)]

mod enrich_support;
mod support;

use sightline_common::shutdown::Shutdown;
use std::ffi::OsString;
use std::time::Duration;

use enrich_support::{flow, node, pod};
use sightline_agent::app::Agent;
use sightline_agent::cli::Args;
use sightline_agent::event::Event;
use sightline_proto::flow::{AgentEventType, FlowFilter, Workload};
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetAgentEventsRequest, GetFlowsRequest, get_flows_response::ResponseTypes};
use sightline_proto::peer::NotifyRequest;
use sightline_proto::peer::peer_client::PeerClient;

fn manifests() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let labels = "  labels: {app: web}\n  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: web-5d8f, uid: rs1, controller: true}]\n";
    let text = [
        node("node-1", "10.0.0.1"),
        node("node-2", "10.0.0.2"),
        pod("shop", "web-5d8f-x1", "u1", &["10.1.0.5"], "node-1", "2026-01-01T00:00:00Z", labels),
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web-5d8f, namespace: shop, uid: rs1, ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: web, uid: d1, controller: true}]}\n---\n".into(),
    ]
    .concat();
    std::fs::write(dir.path().join("cluster.yaml"), text).unwrap();
    dir
}

#[tokio::test]
async fn manifests_mode_enriches_flows_and_announces_nodes_as_peers() {
    let dir = manifests();
    let socket = dir.path().join("hubble.sock");
    let argv: Vec<OsString> = [
        "sightline-agent",
        "--listen-address",
        "127.0.0.1:0",
        "--disable-server-tls",
        "--node-name",
        "node-1",
        "--cluster-name",
        "east",
    ]
    .into_iter()
    .map(OsString::from)
    .chain(["--socket-path".into(), socket.clone().into_os_string()])
    .chain(["--manifests".into(), dir.path().as_os_str().to_owned()])
    .collect();
    let agent = Agent::start(&Args::load_from(argv).unwrap()).await.unwrap();
    let port = agent.server.local_addr().unwrap().port();
    let mut pipeline = Agent::pipeline(agent.sink, agent.k8s.as_ref());
    let shutdown = Shutdown::new();
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(agent.server.run(shutdown));
    let channel = support::unix_channel(socket).await;

    // Peers: one per Node, at its InternalIP and this agent's port, named in the cluster.
    let mut notify = PeerClient::new(channel.clone())
        .notify(NotifyRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut announced = Vec::new();
    while announced.len() < 2 {
        let change = tokio::time::timeout(Duration::from_secs(5), notify.message())
            .await
            .expect("the manifests' nodes are announced")
            .unwrap()
            .unwrap();
        announced.push((change.name, change.address));
    }
    announced.sort();
    assert_eq!(
        announced,
        vec![
            ("east/node-1".to_owned(), format!("10.0.0.1:{port}")),
            ("east/node-2".to_owned(), format!("10.0.0.2:{port}")),
        ]
    );

    pipeline.publish(Event::flow(flow("10.1.0.5", "10.0.0.2", 1_700_000_000)));
    pipeline.idle();
    let mut observer = ObserverClient::new(channel);
    let responses = support::collect(
        &mut observer,
        GetFlowsRequest {
            number: 10,
            ..Default::default()
        },
    )
    .await;
    let flows: Vec<_> = responses
        .iter()
        .filter_map(|r| match &r.response_types {
            Some(ResponseTypes::Flow(f)) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(flows.len(), 1, "{responses:?}");
    let source = flows[0].source.as_ref().unwrap();
    assert_eq!(
        (source.namespace.as_str(), source.pod_name.as_str()),
        ("shop", "web-5d8f-x1")
    );
    assert_eq!(source.cluster_name, "east");
    assert!(source.labels.contains(&"k8s:app=web".to_owned()), "{:?}", source.labels);
    let workloads: Vec<_> = source
        .workloads
        .iter()
        .map(|w| (w.kind.as_str(), w.name.as_str()))
        .collect();
    assert_eq!(workloads, vec![("Deployment", "web")]);
    let destination = flows[0].destination.as_ref().unwrap();
    assert!(
        destination.labels.contains(&"reserved:remote-node".to_owned()),
        "{destination:?}"
    );

    // Filters see the attached metadata: `--from-pod`, `--from-label`, `--to-namespace`.
    let matching = |filter: FlowFilter| {
        let mut observer = observer.clone();
        async move {
            let request = GetFlowsRequest {
                number: 10,
                whitelist: vec![filter],
                ..Default::default()
            };
            support::uuids(&support::collect(&mut observer, request).await).len()
        }
    };
    let by_pod = |pod: &str| FlowFilter {
        source_pod: vec![pod.into()],
        ..Default::default()
    };
    assert_eq!(matching(by_pod("shop/web-5d8f")).await, 1);
    assert_eq!(matching(by_pod("shop/db")).await, 0);
    let by_label = FlowFilter {
        source_label: vec!["k8s:app=web".into()],
        ..Default::default()
    };
    assert_eq!(matching(by_label).await, 1);
    let by_workload = FlowFilter {
        source_workload: vec![Workload {
            name: "web".into(),
            kind: "Deployment".into(),
        }],
        ..Default::default()
    };
    assert_eq!(matching(by_workload).await, 1);

    let mut events = observer
        .get_agent_events(GetAgentEventsRequest {
            // The node's own addresses (netlink) add an ipcache event each.
            number: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut kinds = Vec::new();
    while let Some(event) = events.message().await.unwrap() {
        kinds.push(event.agent_event.unwrap().r#type);
    }
    assert!(kinds.contains(&(AgentEventType::AgentStarted as i32)), "{kinds:?}");
    assert!(kinds.contains(&(AgentEventType::EndpointCreated as i32)), "{kinds:?}");
}
