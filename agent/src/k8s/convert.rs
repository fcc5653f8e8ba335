//! Kubernetes API objects → the small structs the index stores.

use std::net::IpAddr;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::enrich::model::{
    EndpointSliceInfo, Kind, Labels, NamespaceInfo, NodeInfo, Object, OwnerInfo, OwnerRef, PodInfo, PolicyInfo,
    ServiceInfo, ServicePort,
};

/// A Kubernetes type the agent watches, with the kind its objects replace on relist.
pub trait Watched {
    const KIND: Kind;
    /// `None` for objects without a name (nothing to key them by).
    fn convert(&self) -> Option<Object>;
}

fn name_of(meta: &ObjectMeta) -> Option<(String, String)> {
    Some((meta.namespace.clone().unwrap_or_default(), meta.name.clone()?))
}

fn labels_of(meta: &ObjectMeta) -> Labels {
    meta.labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn parse_ips<'a>(ips: impl IntoIterator<Item = &'a String>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in ips {
        match ip.parse() {
            Ok(ip) if !out.contains(&ip) => out.push(ip),
            Ok(_) => {}
            Err(_) => tracing::debug!(ip, "ignoring an address that is not an IP"),
        }
    }
    out
}

/// The controller reference if there is one, else the first owner.
fn owner_of(refs: Option<&Vec<OwnerReference>>) -> Option<OwnerRef> {
    let refs = refs?;
    let chosen = refs.iter().find(|r| r.controller == Some(true)).or(refs.first())?;
    Some(OwnerRef {
        kind: chosen.kind.clone(),
        name: chosen.name.clone(),
    })
}

impl Watched for Pod {
    const KIND: Kind = Kind::Pod;
    fn convert(&self) -> Option<Object> {
        let (namespace, name) = name_of(&self.metadata)?;
        let spec = self.spec.as_ref();
        let status = self.status.as_ref();
        let mut ip_strings: Vec<&String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|p| &p.ip).collect())
            .unwrap_or_default();
        if let Some(ip) = status.and_then(|s| s.pod_ip.as_ref()) {
            ip_strings.insert(0, ip);
        }
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
        Some(Object::Pod(PodInfo {
            namespace,
            name,
            uid: self.metadata.uid.clone().unwrap_or_default(),
            labels: labels_of(&self.metadata),
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".into()),
            node_name: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            ips: parse_ips(ip_strings),
            terminated: matches!(phase, "Succeeded" | "Failed") || self.metadata.deletion_timestamp.is_some(),
            created: self
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_nanosecond())
                .unwrap_or(0),
            owner: owner_of(self.metadata.owner_references.as_ref()),
        }))
    }
}

impl Watched for Service {
    const KIND: Kind = Kind::Service;
    fn convert(&self) -> Option<Object> {
        let (namespace, name) = name_of(&self.metadata)?;
        let spec = self.spec.clone().unwrap_or_default();
        let mut ips: Vec<&String> = spec.cluster_ips.iter().flatten().collect();
        ips.extend(spec.cluster_ip.iter());
        ips.extend(spec.external_ips.iter().flatten());
        let ingress = self
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|l| l.ingress.as_ref());
        ips.extend(ingress.into_iter().flatten().filter_map(|i| i.ip.as_ref()));
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|p| ServicePort {
                port: u16::try_from(p.port).unwrap_or(0),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                node_port: p
                    .node_port
                    .and_then(|port| u16::try_from(port).ok())
                    .filter(|port| *port != 0),
            })
            .collect();
        Some(Object::Service(ServiceInfo {
            namespace,
            name,
            uid: self.metadata.uid.clone().unwrap_or_default(),
            service_type: spec.type_.unwrap_or_else(|| "ClusterIP".into()),
            // Headless services ("None") have no VIP.
            ips: parse_ips(ips.into_iter().filter(|ip| *ip != "None")),
            ports,
            external_traffic_policy: spec.external_traffic_policy.unwrap_or_default(),
            internal_traffic_policy: spec.internal_traffic_policy.unwrap_or_default(),
        }))
    }
}

impl Watched for EndpointSlice {
    const KIND: Kind = Kind::EndpointSlice;
    fn convert(&self) -> Option<Object> {
        let (namespace, name) = name_of(&self.metadata)?;
        let labels = self.metadata.labels.as_ref();
        let service_name = labels
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .cloned()
            .unwrap_or_default();
        Some(Object::EndpointSlice(EndpointSliceInfo {
            namespace,
            name,
            service_name,
            addresses: parse_ips(self.endpoints.iter().flat_map(|e| e.addresses.iter())),
        }))
    }
}

impl Watched for Namespace {
    const KIND: Kind = Kind::Namespace;
    fn convert(&self) -> Option<Object> {
        Some(Object::Namespace(NamespaceInfo {
            name: self.metadata.name.clone()?,
            labels: labels_of(&self.metadata),
        }))
    }
}

impl Watched for Node {
    const KIND: Kind = Kind::Node;
    fn convert(&self) -> Option<Object> {
        let addresses = self.status.as_ref().and_then(|s| s.addresses.as_ref());
        let of_type = |kind: &str| {
            parse_ips(
                addresses
                    .into_iter()
                    .flatten()
                    .filter(|a| a.type_ == kind)
                    .map(|a| &a.address),
            )
        };
        Some(Object::Node(NodeInfo {
            name: self.metadata.name.clone()?,
            internal_ips: of_type("InternalIP"),
            external_ips: of_type("ExternalIP"),
        }))
    }
}

fn owner_object(meta: &ObjectMeta, kind: &str) -> Option<Object> {
    let (namespace, name) = name_of(meta)?;
    Some(Object::Owner(OwnerInfo {
        namespace,
        kind: kind.to_owned(),
        name,
        owner: owner_of(meta.owner_references.as_ref()),
    }))
}

macro_rules! owner_kind {
    ($ty:ty, $kind:expr, $watched:expr) => {
        impl Watched for $ty {
            const KIND: Kind = $watched;
            fn convert(&self) -> Option<Object> {
                owner_object(&self.metadata, $kind)
            }
        }
    };
}

owner_kind!(ReplicaSet, "ReplicaSet", Kind::ReplicaSet);
owner_kind!(Job, "Job", Kind::Job);
owner_kind!(Deployment, "Deployment", Kind::Workload);
owner_kind!(StatefulSet, "StatefulSet", Kind::Workload);
owner_kind!(DaemonSet, "DaemonSet", Kind::Workload);
owner_kind!(CronJob, "CronJob", Kind::Workload);

impl Watched for NetworkPolicy {
    const KIND: Kind = Kind::NetworkPolicy;
    fn convert(&self) -> Option<Object> {
        let (namespace, name) = name_of(&self.metadata)?;
        let spec = self.spec.as_ref();
        let rules = spec
            .map(|s| s.ingress.iter().flatten().count() + s.egress.iter().flatten().count())
            .unwrap_or(0);
        Some(Object::NetworkPolicy(PolicyInfo {
            namespace,
            name,
            uid: self.metadata.uid.clone().unwrap_or_default(),
            generation: self.metadata.generation.unwrap_or(0),
            rule_count: i64::try_from(rules).unwrap_or(i64::MAX),
        }))
    }
}
