//! Which agents and relays `ConfigApplied` counts, from their generation Leases
//! at a given clock. A Lease outlives the process that wrote it (a deleted node's
//! or pod's Lease stays until someone removes it; a crashed process stops renewing
//! it), so a Lease counts only while its holder (the node for an agent, the pod for
//! a relay) exists, and counts as running a generation only while it is fresh.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use sightline_common::generation_lease::{COMPONENT_LABEL, GENERATION_ANNOTATION};

/// Annotation on an agent's or relay's Lease: the config generation it runs.
pub const AGENT_GENERATION_ANNOTATION: &str = GENERATION_ANNOTATION;
/// Component label value of the agents' Leases.
pub const AGENT_COMPONENT: &str = "agent";
/// Component label value of the relays' Leases.
pub const RELAY_COMPONENT: &str = "relay";

/// How long a Lease stays fresh after its renewal when it does not say
/// (`leaseDurationSeconds` unset): three times the default renewal of 10 s,
/// the same as agents and relays write.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(30);

/// Components running the generation, out of those whose holder still exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Those whose Lease is fresh and names the generation.
    pub current: u32,
    /// Those counted at all (their node or pod still exists).
    pub total: u32,
}

impl Count {
    /// Some are counted and not all of them run the generation.
    pub fn behind(&self) -> bool {
        self.current < self.total
    }
}

/// The node or pod a Lease speaks for: the writer puts it in as the holder.
fn holder_of(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

fn component_of(lease: &Lease) -> Option<&str> {
    lease.metadata.labels.as_ref()?.get(COMPONENT_LABEL).map(String::as_str)
}

fn generation_of(lease: &Lease) -> Option<i64> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(GENERATION_ANNOTATION)?
        .trim()
        .parse()
        .ok()
}

/// Renewed within its duration at `now`. A Lease without a renewal time was never
/// renewed by a running process and is not fresh.
pub fn is_fresh(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else {
        return false;
    };
    let Some(renewed) = &spec.renew_time else {
        return false;
    };
    let duration = spec
        .lease_duration_seconds
        .filter(|seconds| *seconds > 0)
        .map_or(DEFAULT_LEASE_DURATION, |seconds| {
            Duration::from_secs(u64::from(seconds.unsigned_abs()))
        });
    let Ok(duration) = SignedDuration::try_from(duration) else {
        return false;
    };
    match renewed.0.checked_add(duration) {
        Ok(expires) => now <= expires,
        Err(_) => false,
    }
}

/// Counts one component: `total` are the Leases labelled `component` whose holder
/// is in `holders`, `current` those of them that are fresh and report `generation`.
/// Leases of another component (or none) are not counted, whatever their holder.
pub fn count_component(
    leases: &[Lease],
    component: &str,
    holders: &BTreeSet<String>,
    generation: i64,
    now: Timestamp,
) -> Count {
    let mut count = Count::default();
    for lease in leases {
        if component_of(lease) != Some(component) || !holder_of(lease).is_some_and(|holder| holders.contains(holder)) {
            continue;
        }
        count.total = count.total.saturating_add(1);
        if is_fresh(lease, now) && generation_of(lease) == Some(generation) {
            count.current = count.current.saturating_add(1);
        }
    }
    count
}

/// Counts the agents of the nodes in `nodes`.
pub fn count_agents(leases: &[Lease], nodes: &BTreeSet<String>, generation: i64, now: Timestamp) -> Count {
    count_component(leases, AGENT_COMPONENT, nodes, generation, now)
}

/// Counts the relays whose pod is among `pods` (the relay pods that exist and are
/// not on their way out).
pub fn count_relays(leases: &[Lease], pods: &BTreeSet<String>, generation: i64, now: Timestamp) -> Count {
    count_component(leases, RELAY_COMPONENT, pods, generation, now)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn lease(node: Option<&str>, generation: Option<&str>, renewed: Option<&str>, duration: Option<i32>) -> Lease {
        component_lease(AGENT_COMPONENT, node, generation, renewed, duration)
    }

    fn component_lease(
        component: &str,
        node: Option<&str>,
        generation: Option<&str>,
        renewed: Option<&str>,
        duration: Option<i32>,
    ) -> Lease {
        Lease {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([(COMPONENT_LABEL.to_owned(), component.to_owned())])),
                annotations: generation
                    .map(|g| BTreeMap::from([(AGENT_GENERATION_ANNOTATION.to_owned(), g.to_owned())])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: node.map(str::to_owned),
                renew_time: renewed.map(|t| MicroTime(at(t))),
                lease_duration_seconds: duration,
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn only_fresh_leases_of_existing_nodes_count() {
        let now = at("2026-12-06T12:00:00Z");
        let nodes: BTreeSet<String> = ["a", "b", "c", "d", "e", "f", "g"].map(str::to_owned).into();
        // (lease, counted in total, counted as running generation 7)
        let table = [
            // Renewed 5 s ago, valid 30 s, on generation 7.
            (
                lease(Some("a"), Some("7"), Some("2026-12-06T11:59:55Z"), Some(30)),
                true,
                true,
            ),
            // Fresh, but still on the previous generation.
            (
                lease(Some("b"), Some("6"), Some("2026-12-06T11:59:55Z"), Some(30)),
                true,
                false,
            ),
            // Generation 7, but its agent stopped renewing 31 s ago: dead agent.
            (
                lease(Some("c"), Some("7"), Some("2026-12-06T11:59:29Z"), Some(30)),
                true,
                false,
            ),
            // Exactly at the end of its duration: still fresh.
            (
                lease(Some("d"), Some("7"), Some("2026-12-06T11:59:30Z"), Some(30)),
                true,
                true,
            ),
            // No duration written: the 30 s default applies, 40 s is stale...
            (
                lease(Some("e"), Some("7"), Some("2026-12-06T11:59:20Z"), None),
                true,
                false,
            ),
            // ...and 20 s is fresh.
            (
                lease(Some("f"), Some("7"), Some("2026-12-06T11:59:40Z"), None),
                true,
                true,
            ),
            // Never renewed.
            (lease(Some("g"), Some("7"), None, Some(30)), true, false),
            // A fresh Lease of a node that was deleted: not an agent any more.
            (
                lease(Some("gone"), Some("7"), Some("2026-12-06T11:59:59Z"), Some(30)),
                false,
                false,
            ),
            // No holder: not written by an agent.
            (
                lease(None, Some("7"), Some("2026-12-06T11:59:59Z"), Some(30)),
                false,
                false,
            ),
        ];
        for (lease, in_total, current) in &table {
            let alone = count_agents(std::slice::from_ref(lease), &nodes, 7, now);
            assert_eq!(
                (alone.total == 1, alone.current == 1),
                (*in_total, *current),
                "{:?}",
                lease.spec
            );
        }
        let leases: Vec<Lease> = table.iter().map(|(lease, _, _)| lease.clone()).collect();
        assert_eq!(count_agents(&leases, &nodes, 7, now), Count { current: 3, total: 7 });
        // Ten minutes later nobody renewed: every agent is counted, none runs it.
        assert_eq!(
            count_agents(&leases, &nodes, 7, at("2026-12-06T12:10:00Z")),
            Count { current: 0, total: 7 }
        );
    }

    #[test]
    fn an_unreadable_generation_is_not_the_current_one() {
        let now = at("2026-12-06T12:00:00Z");
        let nodes = BTreeSet::from(["a".to_owned()]);
        for generation in [None, Some("seven"), Some("")] {
            let leases = [lease(Some("a"), generation, Some("2026-12-06T12:00:00Z"), Some(30))];
            assert_eq!(
                count_agents(&leases, &nodes, 7, now),
                Count { current: 0, total: 1 },
                "{generation:?}"
            );
        }
    }

    #[test]
    fn relays_count_only_fresh_leases_of_their_own_existing_pods() {
        let now = at("2026-12-06T12:00:00Z");
        let pods: BTreeSet<String> = ["relay-a", "relay-b", "relay-c", "relay-d"].map(str::to_owned).into();
        let relay = |pod: &str, generation: &str, renewed: &str| {
            component_lease(RELAY_COMPONENT, Some(pod), Some(generation), Some(renewed), Some(30))
        };
        // (lease, counted in total, counted as running generation 7)
        let table = [
            // Renewed 5 s ago on generation 7.
            (relay("relay-a", "7", "2026-12-06T11:59:55Z"), true, true),
            // Renewed, still on generation 6 (its last good version).
            (relay("relay-b", "6", "2026-12-06T11:59:58Z"), true, false),
            // Generation 7, but not renewed for 45 s: the process is gone or hung.
            (relay("relay-c", "7", "2026-12-06T11:59:15Z"), true, false),
            // Renewed again after a pause: fresh once more.
            (relay("relay-d", "7", "2026-12-06T12:00:00Z"), true, true),
            // A fresh Lease whose pod was deleted (a rollout's old replica).
            (relay("relay-old", "7", "2026-12-06T11:59:59Z"), false, false),
            // Foreign: an agent's Lease whose holder happens to be a relay pod's name...
            (
                component_lease(
                    AGENT_COMPONENT,
                    Some("relay-a"),
                    Some("7"),
                    Some("2026-12-06T11:59:59Z"),
                    Some(30),
                ),
                false,
                false,
            ),
            // ...and a Lease no Sightline component wrote (no component label).
            (
                Lease {
                    metadata: ObjectMeta::default(),
                    ..relay("relay-a", "7", "2026-12-06T11:59:59Z")
                },
                false,
                false,
            ),
        ];
        for (lease, in_total, current) in &table {
            let alone = count_relays(std::slice::from_ref(lease), &pods, 7, now);
            assert_eq!(
                (alone.total == 1, alone.current == 1),
                (*in_total, *current),
                "{:?} {:?}",
                lease.metadata.labels,
                lease.spec
            );
        }
        let leases: Vec<Lease> = table.iter().map(|(lease, _, _)| lease.clone()).collect();
        let relays = count_relays(&leases, &pods, 7, now);
        assert_eq!(relays, Count { current: 2, total: 4 });
        assert!(relays.behind());
        // The relays' Leases are no agents, even for a node of the same name.
        assert_eq!(count_agents(&leases, &pods, 7, now), Count { current: 1, total: 1 });
    }
}
