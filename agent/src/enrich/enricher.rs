//! The pipeline stage: fills Kubernetes metadata into each flow and forwards it.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use sightline_proto::Timestamp;
use sightline_proto::flow::{Flow, L7FlowType, layer7};

use super::dns::DnsCache;
use super::index::Index;
use super::translation::{self, End, PodEnds, Resolution, Translated, Translator};
use crate::datapath::ctnetlink::{ConntrackQuery, LazyConntrack};
use crate::event::{Event, EventSink};
use crate::flow_record::{FlowRecord, SharedEndpoint};
use sightline_common::names::absolute_node_name;

/// How many IPs the DNS name cache remembers.
pub(crate) const DNS_CACHE_IPS: usize = 65_536;
/// Bound on events held behind a flow whose Service connection conntrack has not
/// confirmed yet: past it they are released as they are.
const HELD_LIMIT: usize = 4_096;

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
    /// Events not yet enriched, in arrival order, because the first of them goes to
    /// a Service whose conntrack entry was not confirmed yet; since when.
    held: VecDeque<Event>,
    held_since: Option<Instant>,
}

impl<S: EventSink> Enricher<S> {
    /// An enricher in front of `inner`, reading Service translations from the
    /// kernel's conntrack table (opened on first use) and attaching every DNS name.
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
            held: VecDeque::new(),
            held_since: None,
        }
    }

    /// Reads Service translations from `conntrack` instead of the kernel's (tests, benchmarks).
    pub fn with_conntrack(mut self, conntrack: Box<dyn ConntrackQuery + Send>) -> Self {
        self.translator = Translator::new(conntrack, translation::DEFAULT_CAPACITY);
        self
    }

    /// DNS names inside `domain` are not attached to flows (see `DnsCache::skip_domain`).
    pub fn with_cluster_domain(mut self, domain: &str) -> Self {
        self.dns.skip_domain(domain);
        self
    }

    /// The index flows are looked up in.
    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    /// The next stage, e.g. to read what a test sink collected. Events it receives
    /// directly skip enrichment and the held-back queue.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Forwards the agent events the index queued (pod and IP-cache changes) now,
    /// rather than before the next event or at the next `idle`.
    pub fn flush_agent_events(&mut self) {
        self.index.agent_events().drain_into(&mut self.inner);
    }

    /// Fills the flow's metadata. A flow to a Service address whose connection
    /// conntrack has not confirmed yet keeps the Service address; [`EventSink::publish`]
    /// holds such flows back and asks again instead.
    pub fn enrich(&mut self, record: &mut FlowRecord) {
        self.try_enrich(record);
    }

    /// Like [`Enricher::enrich`]; `false` when the flow should be asked about again
    /// after [`translation::RETRY_AFTER`].
    fn try_enrich(&mut self, record: &mut FlowRecord) -> bool {
        let (source, destination) = record.ip_addresses();
        if source.is_none() && destination.is_none() {
            return true;
        }
        let now = record
            .flow
            .time
            .map(|t| t.as_unix_nanos())
            .unwrap_or_else(|| Timestamp::now().as_unix_nanos());
        self.learn_dns(&record.flow, now);

        let world = self.index.world();
        // Without ports no NodePort matches: port 0 is never one.
        let (protocol, source_port, destination_port) =
            translation::flow_ports(record.flow.l4.as_ref()).unwrap_or((0, 0, 0));
        let metadata = &mut record.metadata;
        let (to_service, from_service, pods) = self.index.read(|lookup| {
            let endpoint = |ip: Option<IpAddr>| {
                let ip = ip?;
                Some(lookup.endpoint(&ip).unwrap_or(world).clone())
            };
            // The endpoint was just looked up: a NodePort only needs its identity.
            let service = |ip: Option<IpAddr>, endpoint: &Option<SharedEndpoint>, port: u16| {
                let ip = ip?;
                lookup
                    .service(&ip)
                    .or_else(|| lookup.node_port(endpoint.as_deref()?, protocol, port))
                    .cloned()
            };
            metadata.source = endpoint(source);
            metadata.destination = endpoint(destination);
            metadata.source_service = service(source, &metadata.source, source_port);
            metadata.destination_service = service(destination, &metadata.destination, destination_port);
            let is_pod = |endpoint: &Option<SharedEndpoint>| {
                endpoint.as_deref().is_some_and(|e| !e.message().pod_name.is_empty())
            };
            (
                metadata.destination_service.is_some(),
                metadata.source_service.is_some(),
                PodEnds {
                    source: is_pod(&metadata.source),
                    destination: is_pod(&metadata.destination),
                },
            )
        });
        // Outside the index lock: a cache miss waits for the kernel.
        let resolution = self.translate(record, (source, destination), to_service, from_service, pods, now);
        let (source, destination) = match resolution {
            Resolution::Translated(Translated::ToService { backend, .. }) => (source, Some(backend.0)),
            Resolution::Translated(Translated::FromService { backend, .. }) => (Some(backend.0), destination),
            Resolution::Translated(Translated::ToBackend { client, .. }) => (Some(client.0), destination),
            Resolution::Translated(Translated::FromBackend { client, .. }) => (source, Some(client.0)),
            Resolution::Plain | Resolution::Unconfirmed => (source, destination),
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
        resolution != Resolution::Unconfirmed
    }

    /// Names the backend of a Service connection netfilter translated, and the
    /// Service at the backend. Flows that touch neither a Service address nor a pod
    /// cannot be part of one and skip the tuple entirely.
    fn translate(
        &mut self,
        record: &mut FlowRecord,
        addresses: (Option<IpAddr>, Option<IpAddr>),
        to_service: bool,
        from_service: bool,
        pods: PodEnds,
        now: i128,
    ) -> Resolution {
        if !to_service && !from_service && !pods.source && !pods.destination {
            return Resolution::Plain;
        }
        let (Some(source), Some(destination)) = addresses else {
            return Resolution::Plain;
        };
        let Some(tuple) = translation::flow_tuple(record.flow.l4.as_ref(), source, destination) else {
            return Resolution::Plain;
        };
        let resolution = self.translator.resolve(&tuple, to_service, from_service, pods, now);
        let Resolution::Translated(translated) = resolution else {
            return resolution;
        };
        let world = self.index.world();
        let protocol = tuple.protocol;
        let metadata = &mut record.metadata;
        self.index.read(|lookup| {
            let endpoint = |ip: IpAddr| Some(lookup.endpoint(&ip).unwrap_or(world).clone());
            match translated {
                Translated::ToService { backend, .. } => metadata.destination = endpoint(backend.0),
                Translated::FromService { backend, .. } => metadata.source = endpoint(backend.0),
                Translated::ToBackend { service, client } => {
                    metadata.destination_service = lookup.frontend(&service.0, protocol, service.1).cloned();
                    metadata.source = endpoint(client.0);
                }
                Translated::FromBackend { service, client } => {
                    metadata.source_service = lookup.frontend(&service.0, protocol, service.1).cloned();
                    metadata.destination = endpoint(client.0);
                }
            }
        });
        match translated {
            Translated::ToService {
                backend, source_xlated, ..
            } => {
                translation::rewrite(record, End::Destination, backend);
                if let Some(xlated) = source_xlated {
                    translation::set_source_xlated(record, xlated);
                }
            }
            Translated::FromService { backend, .. } => translation::rewrite(record, End::Source, backend),
            // Hubble's `source` is the address before SNAT, `source_xlated` the one after.
            Translated::ToBackend { client, .. } if client.0 != source => {
                translation::rewrite(record, End::Source, client);
                translation::set_source_xlated(record, source);
            }
            // The reply reaches the client once netfilter un-masquerades it.
            Translated::FromBackend { client, .. } if client.0 != destination => {
                translation::rewrite(record, End::Destination, client);
            }
            Translated::ToBackend { .. } | Translated::FromBackend { .. } => {}
        }
        resolution
    }

    /// Publishes held events whose wait is over, enriching them now; stops at a
    /// flow that must wait again.
    fn release_held(&mut self, force: bool) {
        let Some(since) = self.held_since else { return };
        if !force && since.elapsed() < translation::RETRY_AFTER && self.held.len() < HELD_LIMIT {
            return;
        }
        self.held_since = None;
        let mut retried = true;
        while let Some(event) = self.held.pop_front() {
            match event {
                Event::Flow(mut flow) => {
                    // The first held flow is asked again now; a later one that is
                    // unconfirmed for the first time waits its own turn.
                    let complete = self.try_enrich(&mut flow);
                    if !complete && !retried && !force {
                        self.held.push_front(Event::Flow(flow));
                        self.held_since = Some(Instant::now());
                        return;
                    }
                    retried = false;
                    self.inner.publish(Event::Flow(flow));
                }
                other => self.inner.publish(other),
            }
        }
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
        if !self.held.is_empty() {
            // Behind a held flow, so the order of events stays the order of arrival.
            self.held.push_back(event);
            self.release_held(false);
            return;
        }
        match event {
            Event::Flow(mut flow) => {
                if self.try_enrich(&mut flow) {
                    self.inner.publish(Event::Flow(flow));
                } else {
                    self.held.push_back(Event::Flow(flow));
                    self.held_since = Some(Instant::now());
                }
            }
            other => self.inner.publish(other),
        }
    }

    fn idle(&mut self) {
        self.flush_agent_events();
        // Producers call this on a timer and once more before they stop: nothing
        // may stay held, so the rest of the wait (at most RETRY_AFTER) is spent here.
        if let Some(since) = self.held_since {
            std::thread::sleep(translation::RETRY_AFTER.saturating_sub(since.elapsed()));
        }
        self.release_held(true);
        self.inner.idle();
    }
}
