//! Context options: the `source` / `destination` labels and `labelsContext`,
//! with the identifiers, fallbacks, label order and values Hubble produces
//! (`pkg/hubble/metrics/api/context.go`).

use std::fmt::Write as _;

use sightline_proto::flow::{Endpoint, TrafficDirection};

use super::MetricsError;
use super::series::LabelKey;
use super::shortcut::Sides;
use crate::flow_record::{FlowRecord, SharedEndpoint};

/// How an endpoint is named in the `source` / `destination` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Identifier {
    /// All identity labels, comma-joined.
    Identity,
    Namespace,
    /// `namespace/pod`.
    Pod,
    /// `namespace/pod` without the ReplicaSet and pod hash suffixes (deprecated in Hubble).
    PodShort,
    PodName,
    /// The DNS names of the address, comma-joined.
    Dns,
    Ip,
    /// `reserved:kube-apiserver` when present, else the first `reserved:` label.
    ReservedIdentity,
    /// `namespace/workload`.
    Workload,
    WorkloadName,
    /// The first label, in the endpoint's order, that is one of the app labels.
    App,
}

impl Identifier {
    fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "identity" => Self::Identity,
            "namespace" => Self::Namespace,
            "pod" => Self::Pod,
            "pod-short" => Self::PodShort,
            "pod-name" => Self::PodName,
            "dns" => Self::Dns,
            "ip" => Self::Ip,
            "reserved-identity" => Self::ReservedIdentity,
            "workload" => Self::Workload,
            "workload-name" => Self::WorkloadName,
            "app" => Self::App,
            _ => return None,
        })
    }

    /// Whether the value comes from the endpoint alone (not the address or DNS names).
    fn reads_endpoint_only(self) -> bool {
        !matches!(self, Self::Ip | Self::Dns)
    }

    /// Whether a label of this kind names one pod, workload or address, so the
    /// series goes when that object does.
    pub(crate) fn names_an_object(self) -> bool {
        matches!(
            self,
            Self::Pod | Self::PodShort | Self::PodName | Self::Ip | Self::Workload | Self::WorkloadName
        )
    }
}

/// The `labelsContext` labels in the fixed order Hubble emits them.
pub(crate) const CONTEXT_LABELS: [&str; 13] = [
    "source_ip",
    "source_pod",
    "source_namespace",
    "source_workload",
    "source_workload_kind",
    "source_app",
    "destination_ip",
    "destination_pod",
    "destination_namespace",
    "destination_workload",
    "destination_workload_kind",
    "destination_app",
    "traffic_direction",
];

/// Option keys that belong to the context (compared without case).
pub(crate) const CONTEXT_KEYS: [&str; 7] = [
    "sourceContext",
    "destinationContext",
    "sourceEgressContext",
    "sourceIngressContext",
    "destinationEgressContext",
    "destinationIngressContext",
    "labelsContext",
];

/// Label prefixes of the pod's app name, as Cilium spells the k8s-sourced labels.
const APP_LABELS: [&str; 3] = ["k8s:app.kubernetes.io/name=", "k8s:k8s-app=", "k8s:app="];
const KUBE_APISERVER: &str = "reserved:kube-apiserver";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ContextOptions {
    source: Vec<Identifier>,
    source_egress: Option<Vec<Identifier>>,
    source_ingress: Option<Vec<Identifier>>,
    destination: Vec<Identifier>,
    destination_egress: Option<Vec<Identifier>>,
    destination_ingress: Option<Vec<Identifier>>,
    /// Indexes into [`CONTEXT_LABELS`], ascending.
    labels: Vec<usize>,
    reads: Reads,
}

/// What of a flow this context's values depend on, for [`ContextOptions::sides`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Reads {
    /// Nothing but the endpoints and the direction (no address, no DNS name).
    endpoints_only: bool,
    source: bool,
    destination: bool,
    direction: bool,
}

fn parse_identifiers(metric: &str, key: &str, value: &str) -> Result<Vec<Identifier>, MetricsError> {
    value
        .split('|')
        .map(|text| {
            Identifier::parse(text).ok_or_else(|| MetricsError::UnknownContext {
                metric: metric.to_owned(),
                option: key.to_owned(),
                value: text.to_owned(),
            })
        })
        .collect()
}

impl ContextOptions {
    /// Reads the context keys of `options`; other keys are the handler's to check.
    pub(crate) fn parse(metric: &str, options: &[(String, String)]) -> Result<Self, MetricsError> {
        let mut parsed = Self::default();
        for (key, value) in options {
            let list = || parse_identifiers(metric, key, value);
            match key.to_ascii_lowercase().as_str() {
                "sourcecontext" => parsed.source = list()?,
                "sourceegresscontext" => parsed.source_egress = Some(list()?),
                "sourceingresscontext" => parsed.source_ingress = Some(list()?),
                "destinationcontext" => parsed.destination = list()?,
                "destinationegresscontext" => parsed.destination_egress = Some(list()?),
                "destinationingresscontext" => parsed.destination_ingress = Some(list()?),
                "labelscontext" => {
                    let mut labels = Vec::new();
                    for label in value.split(',') {
                        let index = CONTEXT_LABELS.iter().position(|known| *known == label).ok_or_else(|| {
                            MetricsError::UnknownContextLabel {
                                metric: metric.to_owned(),
                                label: label.to_owned(),
                            }
                        })?;
                        labels.push(index);
                    }
                    labels.sort_unstable();
                    labels.dedup();
                    parsed.labels = labels;
                }
                _ => {}
            }
        }
        parsed.reads = parsed.reads();
        Ok(parsed)
    }

    fn reads(&self) -> Reads {
        let source_lists = [
            Some(&self.source),
            self.source_egress.as_ref(),
            self.source_ingress.as_ref(),
        ];
        let destination_lists = [
            Some(&self.destination),
            self.destination_egress.as_ref(),
            self.destination_ingress.as_ref(),
        ];
        let ids = source_lists
            .iter()
            .chain(&destination_lists)
            .flatten()
            .flat_map(|list| list.iter());
        let label = |index: &usize| CONTEXT_LABELS[*index];
        let variants = self.source_egress.is_some()
            || self.source_ingress.is_some()
            || self.destination_egress.is_some()
            || self.destination_ingress.is_some();
        Reads {
            endpoints_only: ids.clone().all(|id| id.reads_endpoint_only())
                && !self.labels.iter().any(|i| label(i).ends_with("_ip")),
            source: !self.source.is_empty() || self.labels.iter().any(|i| label(i).starts_with("source_")),
            destination: !self.destination.is_empty()
                || self.labels.iter().any(|i| label(i).starts_with("destination_")),
            direction: variants || self.labels.iter().any(|i| label(i) == "traffic_direction"),
        }
    }

    /// The endpoints and direction this context's values depend on, when they
    /// depend on nothing else of `flow` (values not swapped): what a series
    /// shortcut may stand for. `None` when the values read addresses or DNS
    /// names, or an endpoint the flow carries itself rather than by reference.
    pub(crate) fn sides<'a>(&self, flow: &'a FlowRecord) -> Option<Sides<'a>> {
        if !self.reads.endpoints_only {
            return None;
        }
        fn side<'a>(
            read: bool,
            shared: &'a Option<SharedEndpoint>,
            own: &Option<Box<Endpoint>>,
        ) -> Option<Option<&'a SharedEndpoint>> {
            match (read, shared, own) {
                (false, _, _) => Some(None),
                (true, Some(shared), _) => Some(Some(shared)),
                (true, None, None) => Some(None),
                (true, None, Some(_)) => None,
            }
        }
        Some(Sides {
            source: side(self.reads.source, &flow.metadata.source, &flow.flow.source)?,
            destination: side(
                self.reads.destination,
                &flow.metadata.destination,
                &flow.flow.destination,
            )?,
            direction: if self.reads.direction {
                flow.traffic_direction
            } else {
                0
            },
        })
    }

    pub(crate) fn is_context_key(key: &str) -> bool {
        CONTEXT_KEYS.iter().any(|known| known.eq_ignore_ascii_case(key))
    }

    /// Label names in emission order: labelsContext labels, then `source`, then
    /// `destination`. Like Hubble, the Ingress/Egress variants only override the
    /// generic option: without `sourceContext` there is no `source` label.
    pub(crate) fn label_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.labels.iter().map(|index| CONTEXT_LABELS[*index]).collect();
        if !self.source.is_empty() {
            names.push("source");
        }
        if !self.destination.is_empty() {
            names.push("destination");
        }
        names
    }

    /// Which `source`/`destination` labels hold object names, and the
    /// labelsContext labels that do (for expiry).
    pub(crate) fn object_labels(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for index in &self.labels {
            let label = CONTEXT_LABELS[*index];
            if label.ends_with("_ip") || label.ends_with("_pod") || label.ends_with("_workload") {
                names.push(label);
            }
        }
        let any = |lists: [&[Identifier]; 3]| lists.iter().any(|list| list.iter().any(|id| id.names_an_object()));
        if !self.source.is_empty()
            && any([
                &self.source,
                self.source_egress.as_deref().unwrap_or_default(),
                self.source_ingress.as_deref().unwrap_or_default(),
            ])
        {
            names.push("source");
        }
        if !self.destination.is_empty()
            && any([
                &self.destination,
                self.destination_egress.as_deref().unwrap_or_default(),
                self.destination_ingress.as_deref().unwrap_or_default(),
            ])
        {
            names.push("destination");
        }
        names
    }

    /// Appends this context's label values for `flow` to `key`, in
    /// [`label_names`](Self::label_names) order. `invert` swaps source and
    /// destination (httpV2 counts responses, which travel server to client).
    pub(crate) fn write_values(&self, flow: &FlowRecord, invert: bool, key: &mut LabelKey) {
        let direction = flow.traffic_direction;
        let (first, second) = if invert { (false, true) } else { (true, false) };
        for index in &self.labels {
            key.begin();
            write_context_label(flow, CONTEXT_LABELS[*index], invert, direction, key);
        }
        let source_ids = select(&self.source, &self.source_ingress, &self.source_egress, direction);
        let destination_ids = select(
            &self.destination,
            &self.destination_ingress,
            &self.destination_egress,
            direction,
        );
        // Hubble computes both names, then swaps them when inverting.
        let for_side = |is_source: bool| if is_source { source_ids } else { destination_ids };
        if !self.source.is_empty() {
            key.begin();
            write_first_non_empty(flow, for_side(first), first, key);
        }
        if !self.destination.is_empty() {
            key.begin();
            write_first_non_empty(flow, for_side(second), second, key);
        }
    }
}

fn select<'a>(
    generic: &'a [Identifier],
    ingress: &'a Option<Vec<Identifier>>,
    egress: &'a Option<Vec<Identifier>>,
    direction: i32,
) -> &'a [Identifier] {
    match (ingress, egress) {
        (Some(ids), _) if direction == TrafficDirection::Ingress as i32 => ids,
        (_, Some(ids)) if direction == TrafficDirection::Egress as i32 => ids,
        _ => generic,
    }
}

fn write_first_non_empty(flow: &FlowRecord, ids: &[Identifier], source: bool, key: &mut LabelKey) {
    for id in ids {
        let start = key.len();
        write_identifier(flow, *id, source, key);
        if key.len() > start {
            return;
        }
    }
}

fn endpoint(flow: &FlowRecord, source: bool) -> Option<&Endpoint> {
    if source { flow.source() } else { flow.destination() }
}

fn write_joined(key: &mut LabelKey, parts: &[String]) {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.extend(",");
        }
        key.extend(part);
    }
}

fn write_ip(flow: &FlowRecord, source: bool, key: &mut LabelKey) {
    if let Some(ip) = &flow.flow.ip {
        key.extend(if source { &ip.source } else { &ip.destination });
    } else if let Some((src, dst)) = flow.addresses {
        // Writing into a String cannot fail.
        let _ = write!(key.text_mut(), "{}", if source { src } else { dst });
    }
}

fn write_identifier(flow: &FlowRecord, id: Identifier, source: bool, key: &mut LabelKey) {
    let ep = endpoint(flow, source);
    match id {
        Identifier::Namespace => key.extend(ep.map_or("", |e| &e.namespace)),
        Identifier::Identity => write_joined(key, ep.map_or(&[], |e| &e.labels)),
        Identifier::Pod | Identifier::PodShort => {
            let Some(ep) = ep else { return };
            if !ep.namespace.is_empty() {
                key.extend(&ep.namespace);
                key.extend("/");
            }
            key.extend(if id == Identifier::Pod {
                &ep.pod_name
            } else {
                short_pod_name(&ep.pod_name)
            });
        }
        Identifier::PodName => key.extend(ep.map_or("", |e| &e.pod_name)),
        Identifier::Dns => write_joined(
            key,
            if source {
                flow.source_names()
            } else {
                flow.destination_names()
            },
        ),
        Identifier::Ip => write_ip(flow, source, key),
        Identifier::ReservedIdentity => key.extend(ep.map_or("", |e| reserved_identity(&e.labels))),
        Identifier::Workload => {
            if let Some((ep, workload)) = ep.and_then(|e| e.workloads.first().map(|w| (e, w))) {
                if !ep.namespace.is_empty() {
                    key.extend(&ep.namespace);
                    key.extend("/");
                }
                key.extend(&workload.name);
            }
        }
        Identifier::WorkloadName => key.extend(ep.and_then(|e| e.workloads.first()).map_or("", |w| &w.name)),
        Identifier::App => key.extend(ep.map_or("", |e| app_name(&e.labels))),
    }
}

fn write_context_label(flow: &FlowRecord, label: &str, invert: bool, direction: i32, key: &mut LabelKey) {
    let (side, field) = match label.split_once('_') {
        Some(("source", field)) => (true, field),
        Some(("destination", field)) => (false, field),
        _ => {
            key.extend(match TrafficDirection::try_from(direction) {
                Ok(TrafficDirection::Ingress) => "ingress",
                Ok(TrafficDirection::Egress) => "egress",
                _ => "unknown",
            });
            return;
        }
    };
    let source = side != invert;
    let ep = endpoint(flow, source);
    match field {
        "ip" => write_ip(flow, source, key),
        "pod" => key.extend(ep.map_or("", |e| &e.pod_name)),
        "namespace" => key.extend(ep.map_or("", |e| &e.namespace)),
        "workload" => key.extend(ep.and_then(|e| e.workloads.first()).map_or("", |w| &w.name)),
        "workload_kind" => key.extend(ep.and_then(|e| e.workloads.first()).map_or("", |w| &w.kind)),
        "app" => key.extend(ep.map_or("", |e| app_name(&e.labels))),
        _ => {}
    }
}

fn reserved_identity(labels: &[String]) -> &str {
    if labels.iter().any(|l| l == KUBE_APISERVER) {
        return KUBE_APISERVER;
    }
    labels
        .iter()
        .find(|l| l.starts_with("reserved:"))
        .map_or("", |l| l.as_str())
}

fn app_name(labels: &[String]) -> &str {
    labels
        .iter()
        .find_map(|label| {
            APP_LABELS
                .iter()
                .find_map(|prefix| label.strip_prefix(prefix))
                .filter(|value| !value.is_empty())
        })
        .unwrap_or("")
}

/// Hubble's `^(.+?)(-[a-z0-9]+){1,2}$` → `$1`: drops up to two trailing
/// `-[a-z0-9]+` segments (ReplicaSet hash and pod suffix), keeping a non-empty prefix.
pub(crate) fn short_pod_name(name: &str) -> &str {
    fn strip_segment(name: &str) -> Option<&str> {
        let (prefix, segment) = name.rsplit_once('-')?;
        let valid = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        (valid && !prefix.is_empty()).then_some(prefix)
    }
    match strip_segment(name) {
        Some(once) => strip_segment(once).unwrap_or(once),
        None => name,
    }
}
