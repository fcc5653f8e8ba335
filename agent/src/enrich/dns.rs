//! IP → DNS names, learnt from the DNS responses the agent sees, kept for their TTL.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::flow_record::Names;

/// Names are kept at least this long, so a zero-TTL answer still names the
/// connection that follows it immediately.
const MIN_TTL_NANOS: i128 = 1_000_000_000;

#[derive(Debug)]
struct Entry {
    name: String,
    expires: i128,
}

/// The names of one IP, and the list flows share until one of them expires.
#[derive(Debug, Default)]
struct IpNames {
    entries: Vec<Entry>,
    shared: Option<Names>,
    first_expiry: i128,
}

impl IpNames {
    fn rebuild(&mut self) {
        self.first_expiry = self.entries.iter().map(|e| e.expires).min().unwrap_or(i128::MAX);
        self.shared =
            (!self.entries.is_empty()).then(|| self.entries.iter().map(|e| e.name.clone()).collect::<Arc<[String]>>());
    }
}

/// Bounded by IP count: when full, the IP learnt earliest is forgotten first.
#[derive(Debug)]
pub(crate) struct DnsCache {
    by_ip: FxHashMap<IpAddr, IpNames>,
    order: VecDeque<IpAddr>,
    max_ips: usize,
    max_names_per_ip: usize,
    /// `.cluster.local.`-style suffix of names that are never learnt.
    skipped_suffix: Option<String>,
}

impl DnsCache {
    pub(crate) fn new(max_ips: usize) -> Self {
        DnsCache {
            by_ip: FxHashMap::default(),
            order: VecDeque::new(),
            max_ips: max_ips.max(1),
            max_names_per_ip: 8,
            skipped_suffix: None,
        }
    }

    /// Names in `domain` (the cluster's own, `cluster.local`) are not learnt: they
    /// name cluster endpoints the flow already names by pod and service, and Hubble
    /// UI drops every flow that carries one, which hid pod-to-pod drops.
    pub(crate) fn skip_domain(&mut self, domain: &str) {
        let domain = domain.trim().trim_matches('.');
        self.skipped_suffix = (!domain.is_empty()).then(|| format!(".{domain}"));
    }

    fn skipped(&self, name: &str) -> bool {
        self.skipped_suffix
            .as_deref()
            .is_some_and(|suffix| name.strip_suffix(suffix).is_some() || name == &suffix[1..])
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }

    /// Records that `query` resolved to `ips` at `now` (unix ns) for `ttl` seconds.
    pub(crate) fn learn(&mut self, query: &str, ips: &[IpAddr], ttl_secs: u32, now: i128) {
        let name = query.strip_suffix('.').unwrap_or(query);
        if name.is_empty() || self.skipped(name) {
            return;
        }
        let expires = now + (i128::from(ttl_secs) * 1_000_000_000).max(MIN_TTL_NANOS);
        for ip in ips {
            if !self.by_ip.contains_key(ip) {
                while self.by_ip.len() >= self.max_ips {
                    let Some(oldest) = self.order.pop_front() else { break };
                    self.by_ip.remove(&oldest);
                }
                self.order.push_back(*ip);
            }
            let names = self.by_ip.entry(*ip).or_default();
            names.entries.retain(|e| e.expires > now && e.name != name);
            if names.entries.len() >= self.max_names_per_ip {
                names.entries.remove(0);
            }
            names.entries.push(Entry {
                name: name.to_owned(),
                expires,
            });
            names.rebuild();
        }
    }

    /// Unexpired names for `ip`, oldest answer first. Flows share one list per IP
    /// until a name expires or another is learnt.
    pub(crate) fn names(&mut self, ip: &IpAddr, now: i128) -> Option<Names> {
        let names = self.by_ip.get_mut(ip)?;
        if now >= names.first_expiry {
            names.entries.retain(|e| e.expires > now);
            names.rebuild();
        }
        names.shared.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i128 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn names(cache: &mut DnsCache, address: &str, now: i128) -> Vec<String> {
        cache.names(&ip(address), now).map(|n| n.to_vec()).unwrap_or_default()
    }

    #[test]
    fn names_in_the_cluster_domain_are_not_learnt() {
        let mut cache = DnsCache::new(16);
        cache.skip_domain("cluster.local");
        cache.learn("backend.shop.svc.cluster.local.", &[ip("10.96.0.10")], 30, 0);
        cache.learn("cluster.local.", &[ip("10.96.0.11")], 30, 0);
        cache.learn("example.com.", &[ip("93.184.216.34")], 30, 0);
        cache.learn("notcluster.local.", &[ip("10.0.0.9")], 30, 0);
        assert!(names(&mut cache, "10.96.0.10", SEC).is_empty());
        assert!(names(&mut cache, "10.96.0.11", SEC).is_empty());
        assert_eq!(names(&mut cache, "93.184.216.34", SEC), vec!["example.com"]);
        assert_eq!(names(&mut cache, "10.0.0.9", SEC), vec!["notcluster.local"]);
    }

    #[test]
    fn names_expire_after_their_ttl() {
        let mut cache = DnsCache::new(16);
        cache.learn("example.com.", &[ip("10.0.0.7")], 30, 100 * SEC);
        assert_eq!(names(&mut cache, "10.0.0.7", 129 * SEC), vec!["example.com"]);
        assert!(names(&mut cache, "10.0.0.7", 130 * SEC).is_empty());
        assert!(names(&mut cache, "10.0.0.8", 100 * SEC).is_empty());
    }

    #[test]
    fn a_repeated_answer_refreshes_instead_of_duplicating() {
        let mut cache = DnsCache::new(16);
        cache.learn("a.example.", &[ip("10.0.0.7")], 10, 0);
        cache.learn("a.example.", &[ip("10.0.0.7")], 10, 5 * SEC);
        cache.learn("b.example.", &[ip("10.0.0.7")], 10, 5 * SEC);
        assert_eq!(names(&mut cache, "10.0.0.7", 12 * SEC), vec!["a.example", "b.example"]);
    }

    #[test]
    fn the_cache_stays_bounded_and_forgets_the_oldest_ip() {
        let mut cache = DnsCache::new(2);
        cache.learn("one.", &[ip("10.0.0.1")], 60, 0);
        cache.learn("two.", &[ip("10.0.0.2")], 60, 0);
        cache.learn("three.", &[ip("10.0.0.3")], 60, 0);
        assert_eq!(cache.by_ip.len(), 2);
        assert!(names(&mut cache, "10.0.0.1", SEC).is_empty());
        assert_eq!(names(&mut cache, "10.0.0.3", SEC), vec!["three"]);
    }
}
