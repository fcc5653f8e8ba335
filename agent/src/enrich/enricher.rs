//! The pipeline stage: fills Kubernetes metadata into each flow and forwards it.

use std::net::IpAddr;
use std::sync::Arc;

use sightline_proto::Timestamp;
use sightline_proto::flow::{Endpoint, Flow, L7FlowType, layer7};

use super::dns::DnsCache;
use super::index::Index;
use super::peers::absolute_node_name;
use crate::event::{Event, EventSink};

/// How many IPs the DNS name cache remembers.
pub const DNS_CACHE_IPS: usize = 65_536;

/// Wraps the next stage. Flows get `source`/`destination` endpoints, services and DNS
/// names; agent events queued by the index are forwarded before the next event, and
/// by `idle`, which producers call on a timer, so they also flow when traffic is quiet.
pub struct Enricher<S> {
    inner: S,
    index: Arc<Index>,
    dns: DnsCache,
    /// `Some` when the cluster is not `default`: flows carry `<cluster>/<node>`.
    absolute_node_name: Option<String>,
}

impl<S: EventSink> Enricher<S> {
    pub fn new(index: Arc<Index>, inner: S) -> Self {
        let config = index.config();
        let absolute = absolute_node_name(&config.cluster, &config.local_node);
        let absolute_node_name = (absolute != config.local_node).then_some(absolute);
        Enricher {
            inner,
            index,
            dns: DnsCache::new(DNS_CACHE_IPS),
            absolute_node_name,
        }
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

    pub fn enrich(&mut self, flow: &mut Flow) {
        let Some(ip) = flow.ip.as_ref() else { return };
        let source: Option<IpAddr> = ip.source.parse().ok();
        let destination: Option<IpAddr> = ip.destination.parse().ok();
        let now = flow
            .time
            .map(|t| t.as_unix_nanos())
            .unwrap_or_else(|| Timestamp::now().as_unix_nanos());
        self.learn_dns(flow, now);

        let (src_ep, dst_ep, src_svc, dst_svc) = self.index.read(|lookup| {
            let endpoint = |ip: Option<IpAddr>| ip.and_then(|ip| lookup.endpoint(&ip).cloned());
            let service = |ip: Option<IpAddr>| ip.and_then(|ip| lookup.service(&ip).cloned());
            (
                endpoint(source),
                endpoint(destination),
                service(source),
                service(destination),
            )
        });
        let world = self.index.world();
        flow.source = Some(endpoint_or(src_ep, source, world));
        flow.destination = Some(endpoint_or(dst_ep, destination, world));
        flow.source_service = src_svc.map(|s| (*s).clone());
        flow.destination_service = dst_svc.map(|s| (*s).clone());
        if let Some(ip) = source {
            flow.source_names = self.dns.names(&ip, now);
        }
        if let Some(ip) = destination {
            flow.destination_names = self.dns.names(&ip, now);
        }
        if let Some(absolute) = &self.absolute_node_name
            && flow.node_name == self.index.config().local_node
        {
            flow.node_name.clone_from(absolute);
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

fn endpoint_or(found: Option<Arc<Endpoint>>, ip: Option<IpAddr>, world: &Arc<Endpoint>) -> Endpoint {
    match (found, ip) {
        (Some(endpoint), _) => (*endpoint).clone(),
        (None, Some(_)) => (**world).clone(),
        (None, None) => Endpoint::default(),
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
