//! This node's Lease in the operator's namespace: the configuration generation the
//! agent runs, which the operator's `ConfigApplied` condition counts, renewed so a
//! Lease of a node that is gone can be told apart.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::sync::watch;

/// Label the operator lists agents' Leases by.
pub(crate) const COMPONENT_LABEL: (&str, &str) = ("sightline.dev/component", "agent");
/// Annotation holding the generation in force.
pub(crate) const GENERATION_ANNOTATION: &str = "sightline.dev/config-generation";
/// Field manager of the agent's writes.
pub(crate) const MANAGER: &str = "sightline-agent";

/// The Lease's name for `node`: Kubernetes names allow 253 characters, so a very
/// long node name is cut and keeps a hash of the whole to stay unique.
pub(crate) fn lease_name(node: &str) -> String {
    let name = format!("sightline-agent-{}", node.to_ascii_lowercase());
    if name.len() <= 253 {
        return name;
    }
    let digest = format!("{:016x}", fnv1a(node.as_bytes()));
    format!(
        "{}-{digest}",
        &name[..253 - digest.len() - 1].trim_end_matches(['-', '.'])
    )
}

/// FNV-1a: stable across builds and versions, unlike std's hasher, so a restarted
/// agent finds its Lease again.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The Lease as this agent writes it (server-side apply owns exactly these fields).
pub(crate) fn lease_for(node: &str, generation: Option<i64>, renew_interval: Duration, now: Timestamp) -> Lease {
    let annotations = generation.map(|g| BTreeMap::from([(GENERATION_ANNOTATION.to_owned(), g.to_string())]));
    let duration = (renew_interval.as_secs().max(1) * 3).min(i32::MAX as u64) as i32;
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(node)),
            labels: Some(BTreeMap::from([(
                COMPONENT_LABEL.0.to_owned(),
                COMPONENT_LABEL.1.to_owned(),
            )])),
            annotations,
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_owned()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// Writes the Lease at once, whenever the generation changes and every
/// `renew_interval`, until the generation's sender is gone. Server-side apply
/// creates it the first time and never conflicts with an older version of itself.
pub(crate) async fn report(
    api: Api<Lease>,
    node: String,
    mut generation: watch::Receiver<Option<i64>>,
    renew_interval: Duration,
) {
    let params = PatchParams::apply(MANAGER).force();
    let name = lease_name(&node);
    let mut failing = false;
    loop {
        let current = *generation.borrow_and_update();
        let lease = lease_for(&node, current, renew_interval, Timestamp::now());
        match api.patch(&name, &params, &Patch::Apply(&lease)).await {
            Ok(_) => {
                if failing {
                    tracing::info!(lease = name, "generation Lease written again");
                }
                failing = false;
                tracing::debug!(lease = name, generation = ?current, "generation Lease written");
            }
            Err(error) => {
                // Retried at the next renewal; logged once per outage.
                if !failing {
                    tracing::warn!(%error, lease = name, "cannot write the generation Lease");
                }
                failing = true;
            }
        }
        tokio::select! {
            changed = generation.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(renew_interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_lease_carries_label_generation_and_timing() {
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let lease = lease_for("Node-A", Some(5), Duration::from_secs(10), now);
        assert_eq!(lease.metadata.name.as_deref(), Some("sightline-agent-node-a"));
        assert_eq!(lease.metadata.labels.unwrap()["sightline.dev/component"], "agent");
        assert_eq!(
            lease.metadata.annotations.unwrap()["sightline.dev/config-generation"],
            "5"
        );
        let spec = lease.spec.unwrap();
        assert_eq!(spec.lease_duration_seconds, Some(30));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert!(
            lease_for("n", None, Duration::from_secs(10), now)
                .metadata
                .annotations
                .is_none()
        );
    }

    #[test]
    fn long_node_names_stay_unique_and_valid() {
        let a = lease_name(&"a".repeat(300));
        let b = lease_name(&("a".repeat(299) + "b"));
        assert!(a.len() <= 253 && b.len() <= 253);
        assert_ne!(a, b);
    }
}
