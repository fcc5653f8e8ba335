//! Shared by the enrichment tests: objects from YAML, flows, a collecting sink.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use sightline_agent::enrich::model::Object;
use sightline_agent::enrich::{Change, Index, IndexConfig};
use sightline_agent::event::{Event, EventSink};
use sightline_agent::k8s::manifests;
use sightline_proto::Timestamp;
use sightline_proto::flow::{Flow, Ip};

pub fn index(local_node: &str) -> Arc<Index> {
    Arc::new(Index::new(IndexConfig {
        cluster: "default".into(),
        local_node: local_node.into(),
        agent_port: 4244,
    }))
}

pub fn objects(yaml: &str) -> Vec<Object> {
    manifests::parse(Path::new("test.yaml"), yaml).expect("test manifest")
}

pub fn upsert(index: &Index, yaml: &str) {
    for object in objects(yaml) {
        index.apply(Change::Upsert(object));
    }
}

pub fn pod(ns: &str, name: &str, uid: &str, ips: &[&str], node: &str, created: &str, extra: &str) -> String {
    let pod_ips: Vec<String> = ips.iter().map(|ip| format!("{{ip: \"{ip}\"}}")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  uid: {uid}\n  creationTimestamp: \"{created}\"\n{extra}spec:\n  nodeName: {node}\n  containers: [{{name: c, image: x}}]\nstatus:\n  phase: Running\n  podIP: \"{}\"\n  podIPs: [{}]\n---\n",
        ips.first().copied().unwrap_or(""),
        pod_ips.join(", ")
    )
}

pub fn node(name: &str, internal_ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\nstatus:\n  addresses: [{{type: InternalIP, address: \"{internal_ip}\"}}, {{type: Hostname, address: {name}}}]\n---\n"
    )
}

pub fn service(ns: &str, name: &str, cluster_ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n  uid: svc-{name}\nspec:\n  type: ClusterIP\n  clusterIP: \"{cluster_ip}\"\n  clusterIPs: [\"{cluster_ip}\"]\n  ports: [{{port: 80, protocol: TCP}}]\n---\n"
    )
}

pub fn flow(src: &str, dst: &str, time_secs: i128) -> Flow {
    Flow {
        time: Some(Timestamp::from_unix_nanos(time_secs * 1_000_000_000)),
        ip: Some(Ip {
            source: src.into(),
            destination: dst.into(),
            ..Ip::default()
        }),
        node_name: "node-a".into(),
        ..Flow::default()
    }
}

#[derive(Clone, Default)]
pub struct Collect(pub Arc<Mutex<Vec<Event>>>);

impl EventSink for Collect {
    fn publish(&mut self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collect {
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    pub fn flows(&self) -> Vec<Flow> {
        self.take()
            .into_iter()
            .filter_map(|e| match e {
                Event::Flow(f) => Some(f.into_flow()),
                _ => None,
            })
            .collect()
    }
}
