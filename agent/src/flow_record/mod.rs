//! A flow as the pipeline carries it: the protobuf the datapath decoded, plus the
//! Kubernetes metadata enrichment attached by reference.
//!
//! Endpoints, services and DNS names are built once per pod, service or DNS answer
//! and shared with the index (`Arc`). Copying them into each `flow.Flow` would cost
//! one allocation per label and name, several microseconds per flow; holding
//! references costs a few reference counts. They become protobuf fields when the
//! flow is encoded for a client ([`FlowRecord::encode_as_flow`]) or materialised
//! ([`FlowRecord::to_flow`]). Readers use the accessors (`source()`, ...), which see
//! metadata from either place.
//!
//! The datapath's text fields (UUID, addresses, interface and node names, summary)
//! wait in binary form in [`Deferred`] for the same reason; `node_name()`,
//! `uuid()`, `interface()`, `ip_addresses()` and `ip_version()` read them.

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

mod deferred;
mod shared;
pub(crate) mod summary;

pub use deferred::Deferred;
pub(crate) use deferred::{EMITTER_NAME, ip_text, mac_text, pack_mac};
use prost::Message;
use prost::bytes::BytesMut;
pub use shared::Shared;
use sightline_proto::flow::{Endpoint, Flow, Layer7, Service};
use sightline_proto::wire::{self, Skip, Writer};

/// Field numbers of `flow.Flow` that `Metadata` fills.
use sightline_proto::fields::flow as field;

/// DNS names of one address, shared by every flow that reaches it.
pub type Names = Arc<[String]>;
/// One endpoint (a pod, a node, the world), shared by every flow that touches it.
pub type SharedEndpoint = Arc<Shared<Endpoint>>;
/// One Kubernetes Service (`flow.Service`: name and namespace), shared by every flow
/// addressed to it or answered by it.
pub type SharedService = Arc<Shared<Service>>;

/// What enrichment attached. A set field replaces the flow's own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    /// Replaces `flow.source`: the pod, node or world identity of the source address.
    pub source: Option<SharedEndpoint>,
    /// Replaces `flow.destination`; for traffic to a Service, the backend endpoint.
    pub destination: Option<SharedEndpoint>,
    /// Replaces `flow.source_service`: set on replies from a Service's backend.
    pub source_service: Option<SharedService>,
    /// Replaces `flow.destination_service`: the Service a connection was addressed to.
    pub destination_service: Option<SharedService>,
    /// Replaces `flow.source_names`: DNS names learnt from answers for the source address.
    pub source_names: Option<Names>,
    /// Replaces `flow.destination_names`: DNS names learnt for the destination address.
    pub destination_names: Option<Names>,
}

/// One flow on its way through the pipeline and in the observer ring. Dereferences to
/// the decoded `flow.Flow`; read enriched or deferred fields through the accessors
/// (`source()`, `node_name()`, ...), which look at every place a field may live.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowRecord {
    /// The fields the producer filled as protobuf. Fields that `metadata` or
    /// `deferred` hold are left empty here.
    pub flow: Flow,
    /// Source and destination in binary form when the producer has them, so
    /// enrichment does not parse `flow.ip` back.
    pub addresses: Option<(IpAddr, IpAddr)>,
    /// Kubernetes metadata the enricher attached; each set field wins over `flow`'s own.
    pub metadata: Metadata,
    /// Text fields the datapath decoder keeps in binary form until a client reads them.
    pub deferred: Deferred,
}

fn names_of<'a>(attached: &'a Option<Names>, own: &'a [String]) -> &'a [String] {
    attached.as_deref().unwrap_or(own)
}

impl FlowRecord {
    /// A record whose flow is complete as given: nothing attached, nothing deferred.
    pub fn new(flow: Flow) -> Self {
        Self {
            flow,
            addresses: None,
            metadata: Metadata::default(),
            deferred: Deferred::default(),
        }
    }

    /// `flow.source` as clients will see it: the attached endpoint, else the flow's own.
    pub fn source(&self) -> Option<&Endpoint> {
        self.metadata
            .source
            .as_deref()
            .map(Shared::message)
            .or(self.flow.source.as_deref())
    }

    /// `flow.destination` as clients will see it: the attached endpoint, else the flow's own.
    pub fn destination(&self) -> Option<&Endpoint> {
        self.metadata
            .destination
            .as_deref()
            .map(Shared::message)
            .or(self.flow.destination.as_deref())
    }

    /// `flow.source_service` as clients will see it (`None` unless the source is a
    /// Service's backend answering).
    pub fn source_service(&self) -> Option<&Service> {
        self.metadata
            .source_service
            .as_deref()
            .map(Shared::message)
            .or(self.flow.source_service.as_deref())
    }

    /// `flow.destination_service` as clients will see it (`None` unless the flow was
    /// addressed to a Service).
    pub fn destination_service(&self) -> Option<&Service> {
        self.metadata
            .destination_service
            .as_deref()
            .map(Shared::message)
            .or(self.flow.destination_service.as_deref())
    }

    /// `flow.source_names` as clients will see it; empty when no DNS answer named the address.
    pub fn source_names(&self) -> &[String] {
        names_of(&self.metadata.source_names, &self.flow.source_names)
    }

    /// `flow.destination_names` as clients will see it; empty when no DNS answer named
    /// the address.
    pub fn destination_names(&self) -> &[String] {
        names_of(&self.metadata.destination_names, &self.flow.destination_names)
    }

    /// Whether `flow` alone is the complete flow: nothing attached or deferred.
    fn is_plain(&self) -> bool {
        self.metadata == Metadata::default()
            && self.deferred.is_empty()
            && (self.addresses.is_none() || self.flow.ip.is_some())
    }

    /// `flow.node_name` as clients will see it (cluster-prefixed when the agent has a
    /// cluster name); empty when the producer set none.
    pub fn node_name(&self) -> &str {
        match &self.deferred.node_name {
            Some(name) if self.flow.node_name.is_empty() => name,
            _ => &self.flow.node_name,
        }
    }

    /// Replaces the node name without copying it into the flow.
    pub fn set_node_name(&mut self, name: &Arc<str>) {
        self.flow.node_name.clear();
        self.deferred.node_name = Some(Arc::clone(name));
    }

    /// `flow.uuid` in its hyphenated text form, formatted on each call when the decoder
    /// deferred it; empty when the producer set none.
    pub fn uuid(&self) -> Cow<'_, str> {
        match self.deferred.uuid {
            Some(id) if self.flow.uuid.is_empty() => Cow::Owned(id.hyphenated().to_string()),
            _ => Cow::Borrowed(&self.flow.uuid),
        }
    }

    /// Index and name of the interface the flow was observed on.
    pub fn interface(&self) -> Option<(u32, &str)> {
        match (&self.flow.interface, &self.deferred.interface) {
            (Some(own), _) => Some((own.index, &own.name)),
            (None, Some((index, name))) => Some((*index, name)),
            (None, None) => None,
        }
    }

    /// Source and destination addresses, from the binary form or parsed from `flow.ip`.
    pub fn ip_addresses(&self) -> (Option<IpAddr>, Option<IpAddr>) {
        match (&self.flow.ip, self.addresses) {
            (None, Some((source, destination))) => (Some(source), Some(destination)),
            (Some(ip), _) => (ip.source.parse().ok(), ip.destination.parse().ok()),
            (None, None) => (None, None),
        }
    }

    /// `flow.IPVersion` as a number (0 when the flow has no IP layer).
    pub fn ip_version(&self) -> i32 {
        match (&self.flow.ip, self.addresses) {
            (Some(ip), _) => ip.ip_version,
            (None, Some((IpAddr::V4(_), _))) => sightline_proto::flow::IpVersion::IPv4 as i32,
            (None, Some((IpAddr::V6(_), _))) => sightline_proto::flow::IpVersion::IPv6 as i32,
            (None, None) => 0,
        }
    }

    /// `flow.l7` as readers see it: an HTTP record's header list is built from the
    /// deferred fields (so only readers that need it pay for it).
    pub fn layer7(&self) -> Option<Cow<'_, Layer7>> {
        let own = self.flow.l7.as_deref()?;
        Some(self.deferred.layer7(own).map_or(Cow::Borrowed(own), Cow::Owned))
    }

    /// The complete `flow.Flow`, borrowed when nothing was attached or deferred.
    pub fn complete(&self) -> Cow<'_, Flow> {
        if self.is_plain() {
            Cow::Borrowed(&self.flow)
        } else {
            Cow::Owned(self.to_flow())
        }
    }

    /// The complete `flow.Flow`, metadata included.
    pub fn to_flow(&self) -> Flow {
        self.clone().into_flow()
    }

    /// The complete `flow.Flow`, metadata included, reusing this record's allocations.
    pub fn into_flow(self) -> Flow {
        let Self {
            mut flow,
            metadata,
            deferred,
            addresses,
        } = self;
        deferred.fill(&mut flow, addresses);
        fn owned<M: Message + Clone>(shared: Arc<Shared<M>>) -> Box<M> {
            Box::new(Arc::unwrap_or_clone(shared).into_message())
        }
        if let Some(endpoint) = metadata.source {
            flow.source = Some(owned(endpoint));
        }
        if let Some(endpoint) = metadata.destination {
            flow.destination = Some(owned(endpoint));
        }
        if let Some(service) = metadata.source_service {
            flow.source_service = Some(owned(service));
        }
        if let Some(service) = metadata.destination_service {
            flow.destination_service = Some(owned(service));
        }
        if let Some(names) = metadata.source_names {
            flow.source_names = names.to_vec();
        }
        if let Some(names) = metadata.destination_names {
            flow.destination_names = names.to_vec();
        }
        flow
    }

    /// Writes the body of this flow's `flow.Flow`: its own fields but those the
    /// attached metadata replaces (a field written twice would merge), the
    /// metadata's cached encodings, and the deferred fields rendered as text.
    pub(crate) fn write_flow_body(&self, w: &mut Writer<'_>) {
        let m = &self.metadata;
        let skip = Skip {
            source: m.source.is_some(),
            destination: m.destination.is_some(),
            source_service: m.source_service.is_some(),
            destination_service: m.destination_service.is_some(),
            source_names: m.source_names.is_some(),
            destination_names: m.destination_names.is_some(),
            l7: false,
        };
        let built_l7 = self.flow.l7.as_deref().and_then(|own| self.deferred.layer7(own));
        let skip = Skip {
            l7: built_l7.is_some(),
            ..skip
        };
        wire::flow_fields(&self.flow, skip, w);
        if let Some(l7) = &built_l7 {
            w.prost_message(field::L7, l7);
        }
        if let Some(endpoint) = &m.source {
            w.encoded_message(field::SOURCE, endpoint.encoded_body());
        }
        if let Some(endpoint) = &m.destination {
            w.encoded_message(field::DESTINATION, endpoint.encoded_body());
        }
        if let Some(names) = &m.source_names {
            w.strings(field::SOURCE_NAMES, names);
        }
        if let Some(names) = &m.destination_names {
            w.strings(field::DESTINATION_NAMES, names);
        }
        if let Some(service) = &m.source_service {
            w.encoded_message(field::SOURCE_SERVICE, service.encoded_body());
        }
        if let Some(service) = &m.destination_service {
            w.encoded_message(field::DESTINATION_SERVICE, service.encoded_body());
        }
        if !self.deferred.is_empty() || self.addresses.is_some() {
            self.deferred.render(&self.flow, self.addresses).write(w);
        }
    }

    /// Writes field `tag` of an enclosing message as this flow's `flow.Flow`,
    /// metadata included, without building the complete `Flow`.
    pub fn encode_as_flow(&self, tag: u32, out: &mut BytesMut) {
        Writer::new(out).large_message(tag, |w| self.write_flow_body(w));
    }
}

impl Deref for FlowRecord {
    type Target = Flow;

    fn deref(&self) -> &Flow {
        &self.flow
    }
}

impl DerefMut for FlowRecord {
    fn deref_mut(&mut self) -> &mut Flow {
        &mut self.flow
    }
}

impl From<Flow> for FlowRecord {
    fn from(flow: Flow) -> Self {
        Self::new(flow)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use prost::encoding::{WireType, message};
    use sightline_proto::flow::{Ip, Workload};

    use super::*;

    fn endpoint(pod: &str) -> SharedEndpoint {
        Arc::new(Shared::new(Endpoint {
            identity: 4242,
            namespace: "shop".into(),
            pod_name: pod.into(),
            labels: vec!["k8s:app=web".into(), "k8s:io.kubernetes.pod.namespace=shop".into()],
            workloads: vec![Workload {
                name: "web".into(),
                kind: "Deployment".into(),
            }],
            ..Endpoint::default()
        }))
    }

    fn enriched() -> FlowRecord {
        let mut record = FlowRecord::new(Flow {
            uuid: "u1".into(),
            node_name: "node-a".into(),
            ip: Some(Ip {
                source: "10.0.0.1".into(),
                destination: "10.96.0.10".into(),
                ..Ip::default()
            }),
            ..Flow::default()
        });
        record.metadata = Metadata {
            source: Some(endpoint("web-1")),
            destination: Some(endpoint("web-2")),
            source_service: None,
            destination_service: Some(Arc::new(Shared::new(Service {
                name: "web".into(),
                namespace: "shop".into(),
            }))),
            source_names: None,
            destination_names: Some(vec!["web.shop.svc.cluster.local".to_owned()].into()),
        };
        record
    }

    /// What a client decodes from `encode_as_flow` is the materialised flow.
    fn decoded(record: &FlowRecord) -> Flow {
        let mut out = BytesMut::new();
        record.encode_as_flow(1, &mut out);
        let mut reference = Vec::new();
        message::encode(1, &record.to_flow(), &mut reference);
        assert_eq!(
            out.len(),
            reference.len(),
            "same length as the complete flow's encoding"
        );
        let mut buf = &out[..];
        let (tag, wire_type) = prost::encoding::decode_key(&mut buf).unwrap();
        assert_eq!((tag, wire_type), (1, WireType::LengthDelimited));
        let mut flow = Flow::default();
        message::merge(wire_type, &mut flow, &mut buf, Default::default()).unwrap();
        flow
    }

    #[test]
    fn attached_metadata_is_encoded_as_flow_fields() {
        let record = enriched();
        let flow = decoded(&record);
        assert_eq!(flow, record.to_flow());
        assert_eq!(flow.source.unwrap().pod_name, "web-1");
        assert_eq!(flow.destination_service.unwrap().name, "web");
        assert_eq!(flow.destination_names, vec!["web.shop.svc.cluster.local"]);
        assert_eq!(flow.uuid, "u1");
    }

    #[test]
    fn attached_metadata_replaces_the_flows_own_without_duplicates() {
        let mut record = enriched();
        record.flow.source = Some(Box::new(Endpoint {
            pod_name: "stale".into(),
            ..Endpoint::default()
        }));
        record.flow.destination_names = vec!["old.example".into()];
        record.flow.source_names = vec!["kept.example".into()];
        let flow = decoded(&record);
        assert_eq!(flow.source.as_ref().unwrap().pod_name, "web-1");
        assert_eq!(flow.destination_names, vec!["web.shop.svc.cluster.local"]);
        assert_eq!(
            flow.source_names,
            vec!["kept.example"],
            "nothing attached: the flow's own stay"
        );
        assert_eq!(record.source().unwrap().pod_name, "web-1");
        assert_eq!(record.source_names(), ["kept.example"]);
    }

    /// The decoder allocates one record per packet event; glibc serves blocks of up
    /// to 1032 bytes from a per-thread cache and larger ones through its slower
    /// shared-arena path (the record was 1640 bytes before rare fields were boxed).
    #[test]
    fn a_record_fits_the_allocators_per_thread_cache() {
        let size = size_of::<FlowRecord>();
        assert!(size <= 1032, "FlowRecord is {size} bytes");
    }

    #[test]
    fn a_plain_flow_encodes_and_borrows_as_itself() {
        let record = FlowRecord::new(enriched().flow);
        assert!(matches!(record.complete(), Cow::Borrowed(_)));
        assert_eq!(decoded(&record), record.flow);
        assert!(record.source().is_none());
    }
}
