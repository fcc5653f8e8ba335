//! Which agents `ConfigApplied` counts, from their per-node Leases at a given
//! clock. A Lease outlives the agent that wrote it (a deleted node's Lease stays
//! until someone removes it; a crashed agent's stops being renewed), so a Lease
//! counts only while its node exists, and counts as running a generation only
//! while it is fresh.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Annotation on an agent's Lease: the config generation it runs.
pub const AGENT_GENERATION_ANNOTATION: &str = "sightline.dev/config-generation";

/// How long a Lease stays fresh after its renewal when it does not say
/// (`leaseDurationSeconds` unset): three times the agent's default renewal of 10 s,
/// the same as the agent writes.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(30);

/// Agents running the generation, out of the agents whose node still exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentCount {
    /// Agents that report the current generation.
    pub current: u32,
    /// Agents whose node still exists.
    pub total: u32,
}

/// The node an agent's Lease speaks for: the agent writes its node name as the holder.
fn node_of(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

fn generation_of(lease: &Lease) -> Option<i64> {
    lease
        .metadata
        .annotations
        .as_ref()?
        .get(AGENT_GENERATION_ANNOTATION)?
        .trim()
        .parse()
        .ok()
}

/// Renewed within its duration at `now`. A Lease without a renewal time was never
/// renewed by a running agent and is not fresh.
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

/// Counts the agents: `total` are the Leases whose node is in `nodes`, `current`
/// those of them that are fresh and report `generation`.
pub fn count_agents(leases: &[Lease], nodes: &BTreeSet<String>, generation: i64, now: Timestamp) -> AgentCount {
    let mut count = AgentCount { current: 0, total: 0 };
    for lease in leases {
        if !node_of(lease).is_some_and(|node| nodes.contains(node)) {
            continue;
        }
        count.total = count.total.saturating_add(1);
        if is_fresh(lease, now) && generation_of(lease) == Some(generation) {
            count.current = count.current.saturating_add(1);
        }
    }
    count
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
        Lease {
            metadata: ObjectMeta {
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
        assert_eq!(
            count_agents(&leases, &nodes, 7, now),
            AgentCount { current: 3, total: 7 }
        );
        // Ten minutes later nobody renewed: every agent is counted, none runs it.
        assert_eq!(
            count_agents(&leases, &nodes, 7, at("2026-12-06T12:10:00Z")),
            AgentCount { current: 0, total: 7 }
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
                AgentCount { current: 0, total: 1 },
                "{generation:?}"
            );
        }
    }
}
