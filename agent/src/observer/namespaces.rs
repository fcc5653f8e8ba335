//! Namespaces seen in flows during the last hour (`GetNamespaces`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::flow_record::FlowRecord;
use sightline_proto::observer::Namespace;

/// Hubble forgets a namespace one hour after its last flow.
pub const NAMESPACE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Default)]
pub struct NamespaceTracker {
    /// cluster -> namespace -> last seen.
    seen: Mutex<HashMap<String, HashMap<String, Instant>>>,
}

impl NamespaceTracker {
    pub fn observe(&self, flow: &FlowRecord) {
        let now = Instant::now();
        let Ok(mut seen) = self.seen.lock() else { return };
        for endpoint in [flow.source(), flow.destination()].into_iter().flatten() {
            if endpoint.namespace.is_empty() {
                continue;
            }
            let cluster = if endpoint.cluster_name == "default" {
                ""
            } else {
                endpoint.cluster_name.as_str()
            };
            if !seen.contains_key(cluster) {
                seen.insert(cluster.to_owned(), HashMap::new());
            }
            let Some(namespaces) = seen.get_mut(cluster) else {
                continue;
            };
            match namespaces.get_mut(&endpoint.namespace) {
                Some(at) => *at = now,
                None => {
                    namespaces.insert(endpoint.namespace.clone(), now);
                }
            }
        }
    }

    /// Namespaces seen within the TTL, sorted by cluster then namespace.
    pub fn list(&self) -> Vec<Namespace> {
        let Ok(mut seen) = self.seen.lock() else {
            return Vec::new();
        };
        seen.retain(|_, namespaces| {
            namespaces.retain(|_, at| at.elapsed() < NAMESPACE_TTL);
            !namespaces.is_empty()
        });
        let mut out: Vec<Namespace> = seen
            .iter()
            .flat_map(|(cluster, namespaces)| {
                namespaces.keys().map(|namespace| Namespace {
                    cluster: cluster.clone(),
                    namespace: namespace.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.cluster, &a.namespace).cmp(&(&b.cluster, &b.namespace)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_proto::flow::{Endpoint, Flow};

    #[test]
    fn lists_source_and_destination_namespaces_sorted() {
        let tracker = NamespaceTracker::default();
        let ep = |cluster: &str, ns: &str| {
            Some(Box::new(Endpoint {
                cluster_name: cluster.into(),
                namespace: ns.into(),
                ..Default::default()
            }))
        };
        tracker.observe(&FlowRecord::new(Flow {
            source: ep("default", "web"),
            destination: ep("c2", "api"),
            ..Default::default()
        }));
        tracker.observe(&FlowRecord::new(Flow {
            source: ep("", "app"),
            destination: ep("", ""),
            ..Default::default()
        }));
        let got: Vec<_> = tracker.list().into_iter().map(|n| (n.cluster, n.namespace)).collect();
        assert_eq!(
            got,
            vec![
                ("".into(), "app".into()),
                ("".into(), "web".into()),
                ("c2".into(), "api".into())
            ]
        );
    }
}
