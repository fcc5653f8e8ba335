//! Namespaces seen in flows during the last hour (`GetNamespaces`).
//!
//! The ring's writer owns the table ([`NamespaceTracker`]) without a lock: it runs
//! once per flow, and a `GetNamespaces` that pruned and sorted under a shared mutex
//! used to stall it. Readers load an immutable, sorted snapshot ([`Namespaces`])
//! through `arc-swap`; the writer replaces it at once when a namespace is new and at
//! most about once per [`PUBLISH_INTERVAL`] otherwise, so a reader never makes the
//! writer wait and a new namespace is listed as soon as its flow is written.
//!
//! The writer does not read the clock for a namespace it already knows: it marks
//! the entry seen and stamps every marked entry with one clock reading when it
//! publishes (on [`EventSink::idle`](crate::event::EventSink::idle), which producers
//! call at least once a second, or every [`CLOCK_EVERY`] flows). A last-seen time is
//! therefore up to about two publish intervals late, against a one-hour TTL.
//! Readers apply the TTL against the clock when they list, so expiry holds even if
//! no flow arrives after the last publish.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;
use sightline_proto::observer::Namespace;

use crate::flow_record::FlowRecord;

/// Hubble forgets a namespace one hour after its last flow.
pub(crate) const NAMESPACE_TTL: Duration = Duration::from_secs(3600);
/// How often the writer refreshes last-seen times in the published snapshot.
pub(crate) const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);
/// Flows between two clock readings when the producer does not call `idle`.
const CLOCK_EVERY: u32 = 256;

/// Where the tracker gets the time; a test injects its own.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// One published namespace and when the writer last saw it.
#[derive(Debug, Clone)]
struct Listed {
    cluster: Arc<str>,
    namespace: Arc<str>,
    last_seen: Instant,
}

/// The reading side: the latest snapshot, sorted by cluster then namespace.
pub struct Namespaces {
    snapshot: ArcSwap<Vec<Listed>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Namespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespaces")
            .field("listed", &self.snapshot.load().len())
            .finish_non_exhaustive()
    }
}

impl Default for Namespaces {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl Namespaces {
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(Vec::new()),
            clock,
        }
    }

    /// Namespaces seen within the TTL, sorted by cluster then namespace.
    pub fn list(&self) -> Vec<Namespace> {
        let now = self.clock.now();
        self.snapshot
            .load()
            .iter()
            .filter(|entry| now.saturating_duration_since(entry.last_seen) < NAMESPACE_TTL)
            .map(|entry| Namespace {
                cluster: entry.cluster.to_string(),
                namespace: entry.namespace.to_string(),
            })
            .collect()
    }
}

#[derive(Debug)]
struct Seen {
    last_seen: Instant,
    /// Seen again since `last_seen` was stamped.
    pending: bool,
}

/// The writing side, owned by the ring's single writer.
#[derive(Debug, Default)]
pub(crate) struct NamespaceTracker {
    /// cluster -> namespace -> last seen. FxHash: the keys are our own flows'
    /// short names, hashed once or twice per flow, and SipHash's flood resistance
    /// bought nothing but cost on this path.
    seen: FxHashMap<Arc<str>, FxHashMap<Arc<str>, Seen>>,
    /// Some entry is `pending`.
    dirty: bool,
    /// Flows since the clock was last read.
    unclocked: u32,
    published_at: Option<Instant>,
}

impl NamespaceTracker {
    /// Records the flow's source and destination namespaces.
    pub(crate) fn observe(&mut self, flow: &FlowRecord, out: &Namespaces) {
        let mut added = false;
        for endpoint in [flow.source(), flow.destination()].into_iter().flatten() {
            if endpoint.namespace.is_empty() {
                continue;
            }
            // Hubble lists the default cluster as "".
            let cluster = match endpoint.cluster_name.as_str() {
                "default" => "",
                other => other,
            };
            let known = self
                .seen
                .get_mut(cluster)
                .and_then(|namespaces| namespaces.get_mut(endpoint.namespace.as_str()));
            match known {
                Some(seen) => {
                    seen.pending = true;
                    self.dirty = true;
                }
                None => {
                    let last_seen = out.clock.now();
                    self.seen.entry(cluster.into()).or_default().insert(
                        endpoint.namespace.as_str().into(),
                        Seen {
                            last_seen,
                            pending: false,
                        },
                    );
                    added = true;
                }
            }
        }
        if added {
            let now = out.clock.now();
            self.publish(now, out);
            return;
        }
        self.unclocked += 1;
        if self.unclocked >= CLOCK_EVERY {
            self.tick(out);
        }
    }

    /// Refreshes the snapshot if the last publish is older than [`PUBLISH_INTERVAL`].
    pub(crate) fn tick(&mut self, out: &Namespaces) {
        self.unclocked = 0;
        let now = out.clock.now();
        let due = self
            .published_at
            .is_none_or(|at| now.saturating_duration_since(at) >= PUBLISH_INTERVAL);
        if due && (self.dirty || !self.seen.is_empty()) {
            self.publish(now, out);
        }
    }

    /// Stamps what was seen since the last publish, forgets what expired and
    /// replaces the readers' snapshot.
    fn publish(&mut self, now: Instant, out: &Namespaces) {
        self.unclocked = 0;
        self.published_at = Some(now);
        let dirty = std::mem::take(&mut self.dirty);
        let mut listed = Vec::new();
        self.seen.retain(|cluster, namespaces| {
            namespaces.retain(|namespace, seen| {
                if dirty && seen.pending {
                    seen.last_seen = now;
                    seen.pending = false;
                }
                let live = now.saturating_duration_since(seen.last_seen) < NAMESPACE_TTL;
                if live {
                    listed.push(Listed {
                        cluster: cluster.clone(),
                        namespace: namespace.clone(),
                        last_seen: seen.last_seen,
                    });
                }
                live
            });
            !namespaces.is_empty()
        });
        listed.sort_unstable_by(|a, b| (&a.cluster, &a.namespace).cmp(&(&b.cluster, &b.namespace)));
        out.snapshot.store(Arc::new(listed));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Mutex;

    use super::*;
    use sightline_proto::flow::{Endpoint, Flow};

    /// A clock that moves only when the test says so.
    struct ManualClock {
        now: Mutex<Instant>,
    }

    impl ManualClock {
        fn advance(&self, by: Duration) {
            *self.now.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.now.lock().unwrap()
        }
    }

    fn ep(cluster: &str, ns: &str) -> Option<Box<Endpoint>> {
        Some(Box::new(Endpoint {
            cluster_name: cluster.into(),
            namespace: ns.into(),
            ..Default::default()
        }))
    }

    fn flow_from(ns: &str) -> FlowRecord {
        FlowRecord::new(Flow {
            source: ep("", ns),
            ..Default::default()
        })
    }

    fn names(list: &Namespaces) -> Vec<(String, String)> {
        list.list().into_iter().map(|n| (n.cluster, n.namespace)).collect()
    }

    #[test]
    fn lists_source_and_destination_namespaces_sorted() {
        let list = Namespaces::default();
        let mut tracker = NamespaceTracker::default();
        tracker.observe(
            &FlowRecord::new(Flow {
                source: ep("default", "web"),
                destination: ep("c2", "api"),
                ..Default::default()
            }),
            &list,
        );
        tracker.observe(
            &FlowRecord::new(Flow {
                source: ep("", "app"),
                destination: ep("", ""),
                ..Default::default()
            }),
            &list,
        );
        assert_eq!(
            names(&list),
            vec![
                ("".into(), "app".into()),
                ("".into(), "web".into()),
                ("c2".into(), "api".into())
            ]
        );
    }

    #[test]
    fn a_namespace_expires_an_hour_after_it_was_last_seen() {
        let clock = Arc::new(ManualClock {
            now: Mutex::new(Instant::now()),
        });
        let list = Namespaces::with_clock(clock.clone());
        let mut tracker = NamespaceTracker::default();
        tracker.observe(&flow_from("stale"), &list);
        tracker.observe(&flow_from("refreshed"), &list);
        clock.advance(Duration::from_secs(2 * 60));
        // Seen again: the new time reaches readers with the next publish.
        tracker.observe(&flow_from("refreshed"), &list);
        tracker.tick(&list);
        tracker.observe(&flow_from("late"), &list);

        clock.advance(Duration::from_secs(59 * 60));
        // stale: 61 min ago; refreshed and late: 59 min ago. No flow since, so
        // the readers' check alone must drop the stale one.
        assert_eq!(
            names(&list),
            vec![("".into(), "late".into()), ("".into(), "refreshed".into())]
        );

        clock.advance(Duration::from_secs(2 * 60));
        tracker.tick(&list);
        assert_eq!(names(&list), Vec::<(String, String)>::new());
        assert!(tracker.seen.is_empty(), "the writer forgets expired entries too");
    }

    #[test]
    fn repeat_sightings_are_published_at_most_once_per_interval() {
        let clock = Arc::new(ManualClock {
            now: Mutex::new(Instant::now()),
        });
        let list = Namespaces::with_clock(clock.clone());
        let mut tracker = NamespaceTracker::default();
        tracker.observe(&flow_from("web"), &list);
        let first = list.snapshot.load_full();
        clock.advance(Duration::from_millis(500));
        tracker.observe(&flow_from("web"), &list);
        tracker.tick(&list);
        assert!(
            Arc::ptr_eq(&first, &list.snapshot.load_full()),
            "republished within the interval"
        );
        clock.advance(Duration::from_millis(600));
        tracker.tick(&list);
        let second = list.snapshot.load_full();
        assert_eq!(second[0].last_seen, clock.now(), "stamped when published");
    }
}
