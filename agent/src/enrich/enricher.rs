//! The pipeline stage: fills Kubernetes metadata into each flow and forwards it.

use std::net::IpAddr;
use std::sync::Arc;

use sightline_proto::Timestamp;
use sightline_proto::flow::{Flow, L7FlowType, layer7};

use super::dns::DnsCache;
use super::index::Index;
use super::translation::{self, End, Translated, Translator};
use crate::datapath::ctnetlink::{ConntrackQuery, LazyConntrack};
use crate::event::{Event, EventSink};
use crate::flow_record::FlowRecord;
use sightline_common::names::absolute_node_name;

/// How many IPs the DNS name cache remembers.
pub const DNS_CACHE_IPS: usize = 65_536;

/// Wraps the next stage. Flows get `source`/`destination` endpoints, services and DNS
/// names; agent events queued by the index are forwarded before the next event, and
/// by `idle`, which producers call on a timer, so they also flow when traffic is quiet.
pub struct Enricher<S> {
    inner: S,
    index: Arc<Index>,
    dns: DnsCache,
    /// Backends behind Service addresses that netfilter translated (kube-proxy).
    translator: Translator<Box<dyn ConntrackQuery + Send>>,
    /// `Some` when the cluster is not `default`: flows carry `<cluster>/<node>`.
    absolute_node_name: Option<Arc<str>>,
}

impl<S: EventSink> Enricher<S> {
    pub fn new(index: Arc<Index>, inner: S) -> Self {
        let config = index.config();
        let absolute = absolute_node_name(&config.cluster, &config.local_node);
        let absolute_node_name = (absolute != config.local_node).then(|| Arc::from(absolute));
        Enricher {
            inner,
            index,
            dns: DnsCache::new(DNS_CACHE_IPS),
            translator: Translator::new(Box::new(LazyConntrack::default()), translation::DEFAULT_CAPACITY),
            absolute_node_name,
        }
    }

    /// Reads Service translations from `conntrack` instead of the kernel's (tests, benchmarks).
    pub fn with_conntrack(mut self, conntrack: Box<dyn ConntrackQuery + Send>) -> Self {
        self.translator = Translator::new(conntrack, translation::DEFAULT_CAPACITY);
        self
    }

    /// DNS names inside `domain` are not attached to flows (see [`DnsCache::skip_domain`]).
    pub fn with_cluster_domain(mut self, domain: &str) -> Self {
        self.dns.skip_domain(domain);
        self
    }

    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    pub fn flush_agent_events(&mut self) {
        self.index.agent_events().drain_into(&mut self.inner);
    }

    pub fn enrich(&mut self, record: &mut FlowRecord) {
        let (source, destination) = record.ip_addresses();
        if source.is_none() && destination.is_none() {
            return;
        }
        let now = record
            .flow
            .time
            .map(|t| t.as_unix_nanos())
            .unwrap_or_else(|| Timestamp::now().as_unix_nanos());
        self.learn_dns(&record.flow, now);

        let world = self.index.world();
        let metadata = &mut record.metadata;
        let (to_service, from_service) = self.index.read(|lookup| {
            let endpoint = |ip: Option<IpAddr>| {
                let ip = ip?;
                Some(lookup.endpoint(&ip).unwrap_or(world).clone())
            };
            let service = |ip: Option<IpAddr>| ip.and_then(|ip| lookup.service(&ip).cloned());
            metadata.source = endpoint(source);
            metadata.destination = endpoint(destination);
            metadata.source_service = service(source);
            metadata.destination_service = service(destination);
            (
                metadata.destination_service.is_some(),
                metadata.source_service.is_some(),
            )
        });
        // Outside the index lock: a cache miss waits for the kernel.
        let translated = self.translate(record, (source, destination), to_service, from_service, now);
        let (source, destination) = match translated {
            Some(Translated::ToService { backend, .. }) => (source, Some(backend.0)),
            Some(Translated::FromService { backend, .. }) => (Some(backend.0), destination),
            _ => (source, destination),
        };
        let metadata = &mut record.metadata;
        if !self.dns.is_empty() {
            metadata.source_names = source.and_then(|ip| self.dns.names(&ip, now));
            metadata.destination_names = destination.and_then(|ip| self.dns.names(&ip, now));
        }
        if let Some(absolute) = &self.absolute_node_name
            && record.node_name() == self.index.config().local_node
        {
            record.set_node_name(absolute);
        }
    }

    /// Names the backend of a Service connection netfilter translated. Flows that
    /// touch no Service address skip the tuple entirely until some connection was
    /// translated.
    fn translate(
        &mut self,
        record: &mut FlowRecord,
        addresses: (Option<IpAddr>, Option<IpAddr>),
        to_service: bool,
        from_service: bool,
        now: i128,
    ) -> Option<Translated> {
        if !to_service && !from_service && !self.translator.has_translations() {
            return None;
        }
        let tuple = translation::flow_tuple(record.flow.l4.as_ref(), addresses.0?, addresses.1?)?;
        let translated = self.translator.resolve(&tuple, to_service, from_service, now)?;
        let world = self.index.world();
        let metadata = &mut record.metadata;
        self.index.read(|lookup| {
            let endpoint = |ip: IpAddr| Some(lookup.endpoint(&ip).unwrap_or(world).clone());
            match translated {
                Translated::ToService { backend, .. } => metadata.destination = endpoint(backend.0),
                Translated::FromService { backend, .. } => metadata.source = endpoint(backend.0),
                Translated::ToBackend { service } => metadata.destination_service = lookup.service(&service).cloned(),
                Translated::FromBackend { service } => metadata.source_service = lookup.service(&service).cloned(),
            }
        });
        match translated {
            Translated::ToService { backend, .. } => translation::rewrite(record, End::Destination, backend),
            Translated::FromService { backend, .. } => translation::rewrite(record, End::Source, backend),
            Translated::ToBackend { .. } | Translated::FromBackend { .. } => {}
        }
        Some(translated)
    }

    fn learn_dns(&mut self, flow: &Flow, now: i128) {
        let Some(l7) = &flow.l7 else { return };
        if l7.r#type != L7FlowType::Response as i32 {
            return;
        }
        let Some(layer7::Record::Dns(dns)) = &l7.record else {
            return;
        };
        let ips: Vec<IpAddr> = dns.ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        if !ips.is_empty() {
            self.dns.learn(&dns.query, &ips, dns.ttl, now);
        }
    }
}

impl<S: EventSink> EventSink for Enricher<S> {
    fn publish(&mut self, event: Event) {
        self.flush_agent_events();
        match event {
            Event::Flow(mut flow) => {
                self.enrich(&mut flow);
                self.inner.publish(Event::Flow(flow));
            }
            other => self.inner.publish(other),
        }
    }

    fn idle(&mut self) {
        self.flush_agent_events();
        self.inner.idle();
    }
}
