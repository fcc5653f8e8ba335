//! The IP → endpoint index every flow is looked up in.
//!
//! Writers (watchers, the manifest loader) go through `apply`, which updates the stored
//! objects under a mutex, recomputes only the IPs the change touched, and then swaps
//! those entries in the read-side maps. Readers take a read lock for two hash lookups
//! and leave with `Arc`s to endpoints that were built once, when the pod changed.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use rustc_hash::FxHashMap;
use sightline_proto::flow::Endpoint;
use tokio::sync::watch;

use crate::flow_record::{Shared, SharedEndpoint, SharedService};

use super::config::IndexConfig;
use super::events::{self, AgentEventQueue, IpCacheChange};
use super::identity::{
    IDENTITY_HOST, IDENTITY_KUBE_APISERVER, IDENTITY_REMOTE_NODE, IDENTITY_WORLD, LABEL_HOST, LABEL_KUBE_APISERVER,
    LABEL_REMOTE_NODE, LABEL_WORLD,
};
use super::model::Change;
use super::peers::{NodePeer, peers_of};
use super::state::{IpClaim, NodePort, State};

/// The read side of the [`Index`]: address → endpoint and address → Service maps,
/// borrowed through [`Index::read`] so that several lookups share one lock.
#[derive(Debug, Default)]
pub struct Lookup {
    endpoints: FxHashMap<IpAddr, SharedEndpoint>,
    services: FxHashMap<IpAddr, SharedService>,
    node_ports: FxHashMap<NodePort, SharedService>,
}

impl Lookup {
    /// The endpoint holding `ip`: a pod, a node (`reserved:host`/`reserved:remote-node`)
    /// or the API server. `None` for addresses nothing claims; callers treat those as
    /// [`Index::world`].
    pub fn endpoint(&self, ip: &IpAddr) -> Option<&SharedEndpoint> {
        self.endpoints.get(ip)
    }

    /// The Service whose address (ClusterIP, external IP, load-balancer IP) `ip` is.
    pub fn service(&self, ip: &IpAddr) -> Option<&SharedService> {
        self.services.get(ip)
    }

    /// The Service a client reaches at `ip:port` over `protocol` (IP protocol
    /// number): by the Service address, or, when `ip` is a node's (this one's or
    /// another's), by the NodePort.
    pub fn frontend(&self, ip: &IpAddr, protocol: u8, port: u16) -> Option<&SharedService> {
        self.services
            .get(ip)
            .or_else(|| self.node_port(self.endpoints.get(ip)?, protocol, port))
    }

    /// The Service behind `port` when `endpoint` (an address's, as [`Lookup::endpoint`]
    /// gave it) is a node. Pods and the world cost one comparison.
    pub fn node_port(&self, endpoint: &Endpoint, protocol: u8, port: u16) -> Option<&SharedService> {
        if endpoint.identity != IDENTITY_HOST && endpoint.identity != IDENTITY_REMOTE_NODE {
            return None;
        }
        self.node_ports.get(&(protocol, port))
    }
}

/// Endpoints for the reserved identities, shared by every IP that maps to them.
#[derive(Debug)]
pub(super) struct Reserved {
    pub world: SharedEndpoint,
    pub host: SharedEndpoint,
    pub remote_node: SharedEndpoint,
    pub apiserver: SharedEndpoint,
    pub apiserver_on_host: SharedEndpoint,
    pub apiserver_on_remote_node: SharedEndpoint,
}

fn reserved(identity: u32, labels: &[&str]) -> SharedEndpoint {
    Arc::new(Shared::new(Endpoint {
        identity,
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        ..Endpoint::default()
    }))
}

impl Reserved {
    fn new() -> Self {
        Reserved {
            world: reserved(IDENTITY_WORLD, &[LABEL_WORLD]),
            host: reserved(IDENTITY_HOST, &[LABEL_HOST]),
            remote_node: reserved(IDENTITY_REMOTE_NODE, &[LABEL_REMOTE_NODE]),
            apiserver: reserved(IDENTITY_KUBE_APISERVER, &[LABEL_KUBE_APISERVER]),
            // An API server on a node keeps the node's identity, as in Cilium.
            apiserver_on_host: reserved(IDENTITY_HOST, &[LABEL_HOST, LABEL_KUBE_APISERVER]),
            apiserver_on_remote_node: reserved(IDENTITY_REMOTE_NODE, &[LABEL_KUBE_APISERVER, LABEL_REMOTE_NODE]),
        }
    }
}

/// Everything the enricher knows about the cluster, shared by the watchers that
/// write it and the pipeline that reads it. Cheap to read from many threads.
#[derive(Debug)]
pub struct Index {
    config: IndexConfig,
    state: Mutex<State>,
    lookup: RwLock<Lookup>,
    reserved: Reserved,
    events: AgentEventQueue,
    peers: watch::Sender<Vec<NodePeer>>,
    /// Told when a pod no longer holds an address (the metrics expire its series).
    departures: Mutex<Option<std::sync::mpsc::Sender<PodDeparture>>>,
}

/// A pod that gave up an address: deleted, or the address went to another pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDeparture {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The address it no longer holds.
    pub ip: IpAddr,
}

impl Index {
    /// An empty index: every address is the world until objects are applied.
    pub fn new(config: IndexConfig) -> Self {
        let (peers, _) = watch::channel(Vec::new());
        Index {
            state: Mutex::new(State::new(config.cluster.clone(), config.local_node.clone())),
            config,
            lookup: RwLock::new(Lookup::default()),
            reserved: Reserved::new(),
            events: AgentEventQueue::new(8192),
            peers,
            departures: Mutex::new(None),
        }
    }

    /// Sends every later [`PodDeparture`] to `sender`.
    pub fn notify_departures(&self, sender: std::sync::mpsc::Sender<PodDeparture>) {
        *self.departures.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
    }

    fn departed(&self, namespace: &str, name: &str, ip: IpAddr) {
        if let Some(sender) = &*self.departures.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = sender.send(PodDeparture {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                ip,
            });
        }
    }

    /// The agent's own cluster, node name and port, as given to [`Index::new`].
    pub fn config(&self) -> &IndexConfig {
        &self.config
    }

    /// Agent events produced by changes, for the enricher to forward.
    pub fn agent_events(&self) -> &AgentEventQueue {
        &self.events
    }

    /// Node peers (every node with an address), updated on each node change.
    pub fn peers(&self) -> watch::Receiver<Vec<NodePeer>> {
        self.peers.subscribe()
    }

    /// The endpoint for an address outside everything known: the world.
    pub fn world(&self) -> &SharedEndpoint {
        &self.reserved.world
    }

    /// Runs `f` with the read side; keep it short, writers wait for it.
    pub fn read<R>(&self, f: impl FnOnce(&Lookup) -> R) -> R {
        let lookup = self.lookup.read().unwrap_or_else(|e| e.into_inner());
        f(&lookup)
    }

    /// [`Lookup::endpoint`] under its own read lock.
    pub fn endpoint(&self, ip: IpAddr) -> Option<SharedEndpoint> {
        self.read(|l| l.endpoint(&ip).cloned())
    }

    /// [`Lookup::service`] under its own read lock.
    pub fn service(&self, ip: IpAddr) -> Option<SharedService> {
        self.read(|l| l.service(&ip).cloned())
    }

    /// Stores an added, updated or deleted object (or a kind's full relist) and
    /// recomputes only the addresses it touched; queues the agent events (pod and
    /// IP-cache updates) and node-peer updates the change causes.
    pub fn apply(&self, change: Change) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let touched = state.apply(change);
        self.publish(state, touched);
    }

    /// The addresses configured on this node's interfaces: `reserved:host`, like the
    /// local Node object's, whether or not Kubernetes lists them.
    pub fn set_host_addresses(&self, addresses: impl IntoIterator<Item = IpAddr>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let touched = state.set_host_addresses(addresses.into_iter().collect());
        self.publish(state, touched);
    }

    fn publish(&self, state: std::sync::MutexGuard<'_, State>, mut touched: super::state::Touched) {
        let mut lookup = self.lookup.write().unwrap_or_else(|e| e.into_inner());
        for ip in touched.endpoint_ips.drain() {
            self.recompute_endpoint(&state, &mut lookup, ip, &mut touched.events);
        }
        for ip in touched.service_ips.drain() {
            match state.service_for(ip) {
                Some(service) => lookup.services.insert(ip, service),
                None => lookup.services.remove(&ip),
            };
        }
        for node_port in touched.node_ports.drain() {
            match state.service_for_node_port(node_port) {
                Some(service) => lookup.node_ports.insert(node_port, service),
                None => lookup.node_ports.remove(&node_port),
            };
        }
        drop(lookup);
        for event in touched.events {
            self.events.push(event);
        }
        if touched.nodes_changed {
            let peers = peers_of(&state, &self.config);
            self.peers.send_if_modified(|current| {
                if *current == peers {
                    return false;
                }
                *current = peers;
                true
            });
        }
    }

    fn recompute_endpoint(
        &self,
        state: &State,
        lookup: &mut Lookup,
        ip: IpAddr,
        events: &mut Vec<sightline_proto::flow::AgentEvent>,
    ) {
        let claim = state.claim_for(ip);
        let new = match &claim {
            IpClaim::Pod(entry) => Some(entry.endpoint.clone()),
            IpClaim::ApiServer {
                local: true,
                node: true,
            } => Some(self.reserved.apiserver_on_host.clone()),
            IpClaim::ApiServer { node: true, .. } => Some(self.reserved.apiserver_on_remote_node.clone()),
            IpClaim::ApiServer { .. } => Some(self.reserved.apiserver.clone()),
            IpClaim::Node { local: true } => Some(self.reserved.host.clone()),
            IpClaim::Node { local: false } => Some(self.reserved.remote_node.clone()),
            IpClaim::None => None,
        };
        let host_ip = match &claim {
            IpClaim::Pod(entry) => state.node_ip(&entry.info.node_name),
            _ => None,
        };
        let old = match &new {
            Some(endpoint) => lookup.endpoints.insert(ip, endpoint.clone()),
            None => lookup.endpoints.remove(&ip),
        };
        let old_host_ip = old.as_ref().and_then(|o| state.node_of_pod(&o.namespace, &o.pod_name));
        if let Some(old) = &old
            && !old.pod_name.is_empty()
            && new
                .as_ref()
                .is_none_or(|n| n.namespace != old.namespace || n.pod_name != old.pod_name)
        {
            self.departed(&old.namespace, &old.pod_name, ip);
        }
        match (old, new) {
            (Some(old), None) => events.push(events::ipcache(
                true,
                IpCacheChange {
                    ip,
                    identity: old.identity,
                    old_identity: None,
                    host_ip: old_host_ip,
                    old_host_ip: None,
                    namespace: &old.namespace,
                    pod_name: &old.pod_name,
                },
            )),
            (old, Some(new)) => {
                let same_owner = old
                    .as_ref()
                    .is_some_and(|o| o.namespace == new.namespace && o.pod_name == new.pod_name);
                let same_identity = old.as_ref().is_some_and(|o| o.identity == new.identity);
                if !(same_owner && same_identity && old_host_ip == host_ip) {
                    events.push(events::ipcache(
                        false,
                        IpCacheChange {
                            ip,
                            identity: new.identity,
                            old_identity: old.as_ref().map(|o| o.identity),
                            host_ip,
                            old_host_ip: if same_owner { old_host_ip } else { None },
                            namespace: &new.namespace,
                            pod_name: &new.pod_name,
                        },
                    ));
                }
            }
            (None, None) => {}
        }
    }
}
