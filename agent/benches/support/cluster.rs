//! A simulated cluster for benchmarks: 100 namespaces, 50 nodes and a given number
//! of pods, 10 replicas per Deployment, indexed for enrichment.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use sightline_agent::enrich::model::{Labels, NamespaceInfo, NodeInfo, Object, OwnerInfo, OwnerRef, PodInfo};
use sightline_agent::enrich::{Change, Index, IndexConfig};

pub fn pod_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

pub fn service_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + i))
}

fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// A realistic spread: 100 namespaces, 50 nodes, 10 replicas per deployment.
fn pods(index: &Index, count: u32) {
    for i in 0..count {
        let namespace = format!("team-{}", i % 100);
        let app = format!("app-{}", i / 10);
        let hash = format!("{:x}", 0x5f00_0000 + i / 10);
        index.apply(Change::Upsert(Object::Pod(PodInfo {
            name: format!("{app}-{hash}-{i:05}"),
            uid: format!("00000000-0000-0000-0000-{i:012}"),
            labels: labels(&[
                ("app", app.clone()),
                ("pod-template-hash", hash.clone()),
                ("version", "v1".into()),
                ("app.kubernetes.io/part-of", namespace.clone()),
            ]),
            namespace,
            service_account: "default".into(),
            node_name: format!("node-{}", i % 50),
            host_network: false,
            ips: vec![pod_ip(i)],
            terminated: false,
            created: i128::from(i),
            owner: Some(OwnerRef {
                kind: "ReplicaSet".into(),
                name: format!("{app}-{hash}"),
            }),
        })));
    }
}

pub fn build(pod_count: u32) -> Arc<Index> {
    let index = Arc::new(Index::new(IndexConfig {
        cluster: "default".into(),
        local_node: "node-0".into(),
        agent_port: 4244,
    }));
    for n in 0..100 {
        index.apply(Change::Upsert(Object::Namespace(NamespaceInfo {
            name: format!("team-{n}"),
            labels: labels(&[("kubernetes.io/metadata.name", format!("team-{n}"))]),
        })));
    }
    for n in 0..50 {
        index.apply(Change::Upsert(Object::Node(NodeInfo {
            name: format!("node-{n}"),
            internal_ips: vec![IpAddr::V4(Ipv4Addr::new(192, 168, 0, n + 1))],
            external_ips: vec![],
        })));
    }
    for d in 0..pod_count / 10 {
        index.apply(Change::Upsert(Object::Owner(OwnerInfo {
            namespace: format!("team-{}", (d * 10) % 100),
            kind: "ReplicaSet".into(),
            name: format!("app-{d}-{:x}", 0x5f00_0000 + d),
            owner: Some(OwnerRef {
                kind: "Deployment".into(),
                name: format!("app-{d}"),
            }),
        })));
    }
    pods(&index, pod_count);
    index
}
