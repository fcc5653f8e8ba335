//! Agent events (`flow.AgentEvent`) for what the index sees change, queued until the
//! enricher hands them to the sink in order with the flows.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sightline_proto::Timestamp;
use sightline_proto::flow::{
    AgentEvent, AgentEventType, EndpointUpdateNotification, IpCacheNotification, PolicyUpdateNotification,
    ServiceDeleteNotification, ServiceUpsertNotification, ServiceUpsertNotificationAddr, TimeNotification,
    agent_event::Notification,
};

use super::model::{PodInfo, PolicyInfo, ServiceInfo};
use crate::event::{Event, EventSink};

/// Bounded: if nothing drains it (no flows and no timer), the oldest events go first,
/// and the number dropped is logged when draining resumes.
#[derive(Clone, Debug)]
pub struct AgentEventQueue {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<VecDeque<Event>>,
    pending: AtomicUsize,
    dropped: AtomicUsize,
    capacity: usize,
}

impl AgentEventQueue {
    pub fn new(capacity: usize) -> Self {
        AgentEventQueue {
            shared: Arc::new(Shared {
                queue: Mutex::new(VecDeque::new()),
                pending: AtomicUsize::new(0),
                dropped: AtomicUsize::new(0),
                capacity: capacity.max(1),
            }),
        }
    }

    pub fn push(&self, event: AgentEvent) {
        let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= self.shared.capacity {
            queue.pop_front();
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.push_back(Event::Agent {
            time: Timestamp::now(),
            event: Box::new(event),
        });
        self.shared.pending.store(queue.len(), Ordering::Release);
    }

    /// Cheap when empty (one atomic load), so it can run before every flow.
    pub fn drain_into(&self, sink: &mut dyn EventSink) {
        if self.shared.pending.load(Ordering::Acquire) == 0 {
            return;
        }
        let events: Vec<Event> = {
            let mut queue = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.pending.store(0, Ordering::Release);
            queue.drain(..).collect()
        };
        let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "agent events dropped: nothing drained the queue in time");
        }
        for event in events {
            sink.publish(event);
        }
    }

    pub fn len(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn event(kind: AgentEventType, notification: Notification) -> AgentEvent {
    AgentEvent {
        r#type: kind as i32,
        notification: Some(notification),
    }
}

pub(crate) fn agent_started() -> AgentEvent {
    event(
        AgentEventType::AgentStarted,
        Notification::AgentStart(TimeNotification {
            time: Some(Timestamp::now()),
        }),
    )
}

/// Cilium numbers endpoints per node; without Cilium's endpoint manager we derive a
/// stable number in 1..=65535 from the pod UID so created/deleted pairs match.
pub(crate) fn endpoint_id(uid: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in uid.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    1 + hash % 65535
}

pub(crate) fn endpoint(created: bool, pod: &PodInfo, labels: &[String]) -> AgentEvent {
    let kind = if created {
        AgentEventType::EndpointCreated
    } else {
        AgentEventType::EndpointDeleted
    };
    event(
        kind,
        Notification::EndpointUpdate(EndpointUpdateNotification {
            id: endpoint_id(&pod.uid),
            labels: labels.to_vec(),
            error: String::new(),
            pod_name: pod.name.clone(),
            namespace: pod.namespace.clone(),
        }),
    )
}

pub(crate) struct IpCacheChange<'a> {
    pub ip: IpAddr,
    pub identity: u32,
    pub old_identity: Option<u32>,
    pub host_ip: Option<IpAddr>,
    pub old_host_ip: Option<IpAddr>,
    pub namespace: &'a str,
    pub pod_name: &'a str,
}

pub(crate) fn ipcache(deleted: bool, change: IpCacheChange<'_>) -> AgentEvent {
    let kind = if deleted {
        AgentEventType::IpcacheDeleted
    } else {
        AgentEventType::IpcacheUpserted
    };
    let prefix = if change.ip.is_ipv4() { 32 } else { 128 };
    event(
        kind,
        Notification::IpcacheUpdate(IpCacheNotification {
            cidr: format!("{}/{prefix}", change.ip),
            identity: change.identity,
            old_identity: change.old_identity.map(Into::into),
            host_ip: change.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            old_host_ip: change.old_host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            encrypt_key: 0,
            namespace: change.namespace.to_owned(),
            pod_name: change.pod_name.to_owned(),
        }),
    )
}

#[allow(deprecated)]
pub(crate) fn service_upserted(service: &ServiceInfo) -> AgentEvent {
    let frontend = service.ips.first().map(|ip| ServiceUpsertNotificationAddr {
        ip: ip.to_string(),
        port: service.ports.first().map(|p| u32::from(p.port)).unwrap_or(0),
    });
    event(
        AgentEventType::ServiceUpserted,
        Notification::ServiceUpsert(ServiceUpsertNotification {
            id: service_id(service),
            frontend_address: frontend,
            backend_addresses: Vec::new(),
            r#type: service.service_type.clone(),
            traffic_policy: String::new(),
            name: service.name.clone(),
            namespace: service.namespace.clone(),
            ext_traffic_policy: service.external_traffic_policy.clone(),
            int_traffic_policy: service.internal_traffic_policy.clone(),
        }),
    )
}

#[allow(deprecated)]
pub(crate) fn service_deleted(service: &ServiceInfo) -> AgentEvent {
    event(
        AgentEventType::ServiceDeleted,
        Notification::ServiceDelete(ServiceDeleteNotification {
            id: service_id(service),
        }),
    )
}

fn service_id(service: &ServiceInfo) -> u32 {
    // Same derivation as endpoints; a service's id only has to pair upsert with delete.
    u32::try_from(endpoint_id(&format!("{}/{}", service.namespace, service.name))).unwrap_or(0)
}

/// Labels as Cilium gives a rule derived from a Kubernetes NetworkPolicy.
pub(crate) fn policy_labels(policy: &PolicyInfo) -> Vec<String> {
    vec![
        "k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy".to_owned(),
        format!("k8s:io.cilium.k8s.policy.name={}", policy.name),
        format!("k8s:io.cilium.k8s.policy.namespace={}", policy.namespace),
        format!("k8s:io.cilium.k8s.policy.uid={}", policy.uid),
    ]
}

pub(crate) fn policy(deleted: bool, policy: &PolicyInfo, revision: u64) -> AgentEvent {
    let kind = if deleted {
        AgentEventType::PolicyDeleted
    } else {
        AgentEventType::PolicyUpdated
    };
    event(
        kind,
        Notification::PolicyUpdate(PolicyUpdateNotification {
            labels: policy_labels(policy),
            revision,
            rule_count: policy.rule_count,
        }),
    )
}
