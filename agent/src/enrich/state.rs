//! The stored objects behind the index, and which IPs each change touches.

use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use sightline_proto::flow::{AgentEvent, Endpoint, Service};

use super::events;
use super::identity::{identity_for_labels, pod_labels};
use super::model::{
    Change, EndpointSliceInfo, Kind, NamespaceInfo, NodeInfo, Object, OwnerInfo, PodInfo, PolicyInfo, ServiceInfo,
};
use super::workload::workload_of;
use crate::flow_record::{Shared, SharedEndpoint, SharedService};

#[derive(Debug)]
pub(super) struct PodEntry {
    pub info: PodInfo,
    pub endpoint: SharedEndpoint,
}

/// (IP protocol number, port): a Service's NodePort, open on every node address.
pub(super) type NodePort = (u8, u16);

/// Who an IP belongs to, strongest claim first.
pub(super) enum IpClaim<'a> {
    Pod(&'a PodEntry),
    ApiServer { local: bool, node: bool },
    Node { local: bool },
    None,
}

/// What one change did: IPs to recompute, events to publish.
#[derive(Default)]
pub(super) struct Touched {
    pub endpoint_ips: FxHashSet<IpAddr>,
    pub service_ips: FxHashSet<IpAddr>,
    pub node_ports: FxHashSet<NodePort>,
    pub events: Vec<AgentEvent>,
    pub nodes_changed: bool,
}

#[derive(Debug)]
pub(super) struct State {
    cluster: String,
    local_node: String,
    /// Boxed: a hash table keeps spare slots, and empty ones should be small.
    pods: FxHashMap<Arc<str>, Box<PodEntry>>,
    /// Every live or terminated pod that reported an IP; the winner is chosen per lookup.
    ip_pods: FxHashMap<IpAddr, Vec<Arc<str>>>,
    services: FxHashMap<String, ServiceInfo>,
    ip_services: FxHashMap<IpAddr, Vec<Arc<str>>>,
    node_port_services: FxHashMap<NodePort, Vec<Arc<str>>>,
    apiserver_slices: FxHashMap<String, EndpointSliceInfo>,
    namespaces: FxHashMap<String, NamespaceInfo>,
    pub(super) nodes: FxHashMap<String, NodeInfo>,
    ip_nodes: FxHashMap<IpAddr, Vec<Arc<str>>>,
    /// Addresses configured on this node's interfaces (netlink), which are
    /// `reserved:host` even when no Node object lists them (a CNI bridge gateway).
    host_addresses: FxHashSet<IpAddr>,
    owners: FxHashMap<String, OwnerInfo>,
    policies: FxHashMap<String, PolicyInfo>,
    policy_revision: u64,
}

fn claim<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, Vec<Arc<str>>>, ip: K, key: &Arc<str>) {
    let keys = map.entry(ip).or_default();
    if !keys.iter().any(|k| k == key) {
        keys.push(key.clone());
    }
}

fn release<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, Vec<Arc<str>>>, ip: K, key: &str) {
    if let Some(keys) = map.get_mut(&ip) {
        keys.retain(|k| &**k != key);
        if keys.is_empty() {
            map.remove(&ip);
        }
    }
}

impl State {
    pub(super) fn new(cluster: String, local_node: String) -> Self {
        State {
            cluster,
            local_node,
            pods: FxHashMap::default(),
            ip_pods: FxHashMap::default(),
            services: FxHashMap::default(),
            ip_services: FxHashMap::default(),
            node_port_services: FxHashMap::default(),
            apiserver_slices: FxHashMap::default(),
            namespaces: FxHashMap::default(),
            nodes: FxHashMap::default(),
            ip_nodes: FxHashMap::default(),
            host_addresses: FxHashSet::default(),
            owners: FxHashMap::default(),
            policies: FxHashMap::default(),
            policy_revision: 0,
        }
    }

    pub(super) fn apply(&mut self, change: Change) -> Touched {
        let mut touched = Touched::default();
        match change {
            Change::Upsert(object) => self.upsert(object, &mut touched),
            Change::Delete(kind, key) => self.delete(kind, &key, &mut touched),
            Change::Replace(kind, objects) => {
                let keep: FxHashSet<String> = objects.iter().filter(|o| o.kind() == kind).map(Object::key).collect();
                for key in self.keys(kind) {
                    if !keep.contains(&key) {
                        self.delete(kind, &key, &mut touched);
                    }
                }
                for object in objects.into_iter().filter(|o| o.kind() == kind) {
                    self.upsert(object, &mut touched);
                }
            }
        }
        touched
    }

    fn keys(&self, kind: Kind) -> Vec<String> {
        match kind {
            Kind::Pod => self.pods.keys().map(|k| k.to_string()).collect(),
            Kind::Service => self.services.keys().cloned().collect(),
            Kind::EndpointSlice => self.apiserver_slices.keys().cloned().collect(),
            Kind::Namespace => self.namespaces.keys().cloned().collect(),
            Kind::Node => self.nodes.keys().cloned().collect(),
            Kind::ReplicaSet | Kind::Job | Kind::Workload => self
                .owners
                .iter()
                .filter(|(_, o)| o.watched_kind() == kind)
                .map(|(k, _)| k.clone())
                .collect(),
            Kind::NetworkPolicy => self.policies.keys().cloned().collect(),
        }
    }

    fn upsert(&mut self, object: Object, touched: &mut Touched) {
        let key = object.key();
        match object {
            Object::Pod(pod) => self.upsert_pod(key, pod, touched),
            Object::Service(service) => {
                if self.services.get(&key) == Some(&service) {
                    return;
                }
                self.delete_service(&key, touched, false);
                let key: Arc<str> = key.into();
                for ip in &service.ips {
                    claim(&mut self.ip_services, *ip, &key);
                    touched.service_ips.insert(*ip);
                }
                for node_port in node_ports(&service) {
                    claim(&mut self.node_port_services, node_port, &key);
                    touched.node_ports.insert(node_port);
                }
                touched.events.push(events::service_upserted(&service));
                self.services.insert(key.to_string(), service);
            }
            Object::EndpointSlice(slice) => {
                if slice.namespace != "default" || slice.service_name != "kubernetes" {
                    return;
                }
                if let Some(old) = self.apiserver_slices.insert(key, slice.clone()) {
                    touched.endpoint_ips.extend(old.addresses);
                }
                touched.endpoint_ips.extend(slice.addresses);
            }
            Object::Namespace(namespace) => {
                if self.namespaces.get(&key) == Some(&namespace) {
                    return;
                }
                self.namespaces.insert(key.clone(), namespace);
                self.rebuild_pods(|pod| pod.namespace == key, touched);
            }
            Object::Node(node) => {
                if self.nodes.get(&key) == Some(&node) {
                    return;
                }
                self.delete_node(&key, touched);
                let key: Arc<str> = key.into();
                for ip in node.internal_ips.iter().chain(&node.external_ips) {
                    claim(&mut self.ip_nodes, *ip, &key);
                    touched.endpoint_ips.insert(*ip);
                }
                self.nodes.insert(key.to_string(), node);
                touched.nodes_changed = true;
                // Host IPs of this node's pods may have changed.
                self.rebuild_pods(|pod| *pod.node_name == *key, touched);
            }
            Object::Owner(owner) => {
                if self.owners.get(&key) == Some(&owner) {
                    return;
                }
                let namespace = owner.namespace.clone();
                self.owners.insert(key, owner);
                self.rebuild_pods(|pod| pod.namespace == namespace && pod.owner.is_some(), touched);
            }
            Object::NetworkPolicy(policy) => {
                if self.policies.get(&key) == Some(&policy) {
                    return;
                }
                self.policy_revision += 1;
                touched
                    .events
                    .push(events::policy(false, &policy, self.policy_revision));
                self.policies.insert(key, policy);
            }
        }
    }

    fn delete(&mut self, kind: Kind, key: &str, touched: &mut Touched) {
        match kind {
            Kind::Pod => {
                if let Some(old) = self.pods.remove(key) {
                    self.release_pod(key, &old, touched);
                }
            }
            Kind::Service => self.delete_service(key, touched, true),
            Kind::EndpointSlice => {
                if let Some(old) = self.apiserver_slices.remove(key) {
                    touched.endpoint_ips.extend(old.addresses);
                }
            }
            Kind::Namespace => {
                if self.namespaces.remove(key).is_some() {
                    self.rebuild_pods(|pod| pod.namespace == key, touched);
                }
            }
            Kind::Node => {
                self.delete_node(key, touched);
                touched.nodes_changed = true;
            }
            Kind::ReplicaSet | Kind::Job | Kind::Workload => {
                if let Some(old) = self.owners.remove(key) {
                    self.rebuild_pods(|pod| pod.namespace == old.namespace && pod.owner.is_some(), touched);
                }
            }
            Kind::NetworkPolicy => {
                if let Some(old) = self.policies.remove(key) {
                    self.policy_revision += 1;
                    touched.events.push(events::policy(true, &old, self.policy_revision));
                }
            }
        }
    }

    fn is_local_endpoint(&self, pod: &PodInfo) -> bool {
        pod.node_name == self.local_node && !pod.host_network && !pod.terminated && !pod.ips.is_empty()
    }

    fn upsert_pod(&mut self, key: String, pod: PodInfo, touched: &mut Touched) {
        if self.pods.get(key.as_str()).is_some_and(|old| old.info == pod) {
            return;
        }
        let was_local = match self.pods.remove(key.as_str()) {
            Some(old) => {
                for ip in &old.info.ips {
                    release(&mut self.ip_pods, *ip, &key);
                    touched.endpoint_ips.insert(*ip);
                }
                self.is_local_endpoint(&old.info)
            }
            None => false,
        };
        let endpoint = Arc::new(Shared::new(self.build_endpoint(&pod)));
        let key: Arc<str> = key.into();
        if !pod.host_network {
            for ip in &pod.ips {
                claim(&mut self.ip_pods, *ip, &key);
                touched.endpoint_ips.insert(*ip);
            }
        }
        let is_local = self.is_local_endpoint(&pod);
        if is_local != was_local {
            touched.events.push(events::endpoint(is_local, &pod, &endpoint.labels));
        }
        self.pods.insert(key, Box::new(PodEntry { info: pod, endpoint }));
    }

    fn release_pod(&mut self, key: &str, old: &PodEntry, touched: &mut Touched) {
        for ip in &old.info.ips {
            release(&mut self.ip_pods, *ip, key);
            touched.endpoint_ips.insert(*ip);
        }
        if self.is_local_endpoint(&old.info) {
            touched
                .events
                .push(events::endpoint(false, &old.info, &old.endpoint.labels));
        }
    }

    /// Re-derives labels, identity and workloads of the matching pods after a
    /// namespace, owner or node changed under them.
    fn rebuild_pods(&mut self, matches: impl Fn(&PodInfo) -> bool, touched: &mut Touched) {
        let keys: Vec<Arc<str>> = self
            .pods
            .iter()
            .filter(|(_, p)| matches(&p.info))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let Some(info) = self.pods.get(&key).map(|p| p.info.clone()) else {
                continue;
            };
            let endpoint = self.build_endpoint(&info);
            if let Some(entry) = self.pods.get_mut(&key) {
                // Host IP changes need an ipcache event even when the endpoint is the same.
                let changed = **entry.endpoint != endpoint;
                if changed || !info.host_network {
                    touched.endpoint_ips.extend(info.ips.iter().copied());
                }
                if changed {
                    entry.endpoint = Arc::new(Shared::new(endpoint));
                }
            }
        }
    }

    fn delete_service(&mut self, key: &str, touched: &mut Touched, announce: bool) {
        if let Some(old) = self.services.remove(key) {
            for ip in &old.ips {
                release(&mut self.ip_services, *ip, key);
                touched.service_ips.insert(*ip);
            }
            for node_port in node_ports(&old) {
                release(&mut self.node_port_services, node_port, key);
                touched.node_ports.insert(node_port);
            }
            if announce {
                touched.events.push(events::service_deleted(&old));
            }
        }
    }

    fn delete_node(&mut self, key: &str, touched: &mut Touched) {
        if let Some(old) = self.nodes.remove(key) {
            for ip in old.internal_ips.iter().chain(&old.external_ips) {
                release(&mut self.ip_nodes, *ip, key);
                touched.endpoint_ips.insert(*ip);
            }
        }
    }

    fn build_endpoint(&self, pod: &PodInfo) -> Endpoint {
        let labels = pod_labels(
            pod,
            self.namespaces.get(&pod.namespace).map(|n| &n.labels),
            &self.cluster,
        );
        Endpoint {
            id: 0,
            identity: identity_for_labels(&labels),
            cluster_name: self.cluster.clone(),
            namespace: pod.namespace.clone(),
            labels,
            pod_name: pod.name.clone(),
            workloads: workload_of(&self.owners, pod).into_iter().collect(),
        }
    }

    /// Replaces this node's interface addresses; the ones that came or went need recomputing.
    pub(super) fn set_host_addresses(&mut self, addresses: FxHashSet<IpAddr>) -> Touched {
        let mut touched = Touched::default();
        touched
            .endpoint_ips
            .extend(addresses.symmetric_difference(&self.host_addresses).copied());
        self.host_addresses = addresses;
        touched
    }

    pub(super) fn claim_for(&self, ip: IpAddr) -> IpClaim<'_> {
        let pod = self
            .ip_pods
            .get(&ip)
            .into_iter()
            .flatten()
            .filter_map(|key| self.pods.get(key))
            .filter(|p| !p.info.terminated && !p.info.host_network)
            .max_by(|a, b| (&a.info.created, &a.info.uid).cmp(&(&b.info.created, &b.info.uid)));
        if let Some(pod) = pod {
            return IpClaim::Pod(pod);
        }
        let on_host = self.host_addresses.contains(&ip);
        let node = self.ip_nodes.get(&ip).and_then(|keys| keys.first());
        let local = on_host || node.is_some_and(|n| **n == *self.local_node);
        if self.apiserver_slices.values().any(|s| s.addresses.contains(&ip)) {
            return IpClaim::ApiServer {
                local,
                node: node.is_some() || on_host,
            };
        }
        match node {
            Some(_) => IpClaim::Node { local },
            None if on_host => IpClaim::Node { local: true },
            None => IpClaim::None,
        }
    }

    pub(super) fn service_for(&self, ip: IpAddr) -> Option<SharedService> {
        self.shared_service(self.ip_services.get(&ip)?.first()?)
    }

    /// The Service behind a NodePort; if two claim it (the API server refuses
    /// that, manifests may not), the first one stored.
    pub(super) fn service_for_node_port(&self, node_port: NodePort) -> Option<SharedService> {
        self.shared_service(self.node_port_services.get(&node_port)?.first()?)
    }

    fn shared_service(&self, key: &str) -> Option<SharedService> {
        let service = self.services.get(key)?;
        Some(Arc::new(Shared::new(Service {
            name: service.name.clone(),
            namespace: service.namespace.clone(),
        })))
    }

    pub(super) fn node_ip(&self, node: &str) -> Option<IpAddr> {
        let node = self.nodes.get(node)?;
        node.internal_ips.first().or(node.external_ips.first()).copied()
    }

    pub(super) fn node_of_pod(&self, namespace: &str, name: &str) -> Option<IpAddr> {
        let pod = self.pods.get(format!("{namespace}/{name}").as_str())?;
        self.node_ip(&pod.info.node_name)
    }
}

fn node_ports(service: &ServiceInfo) -> impl Iterator<Item = NodePort> + '_ {
    service
        .ports
        .iter()
        .filter_map(|port| Some((port.ip_protocol()?, port.node_port?)))
}
