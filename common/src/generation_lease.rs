//! The Lease on which a running component (an agent per node, each relay pod)
//! reports the configuration generation it has applied, which the operator's
//! `ConfigApplied` condition counts. It is renewed on a timer, so the operator can
//! tell a component that is gone from one that is still on an older generation.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::sync::watch;

/// Label key the operator lists the Leases of one component by.
pub const COMPONENT_LABEL: &str = "sightline.dev/component";
/// Annotation holding the generation in force.
pub const GENERATION_ANNOTATION: &str = "sightline.dev/config-generation";
/// Kubernetes object names allow 253 characters.
const MAX_NAME: usize = 253;

/// Who writes a Lease: which component (`agent`, `relay`) and which instance of
/// it (the node for an agent, the pod for a relay), and how often it renews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationLease {
    /// Becomes the label value, the name prefix and the field manager.
    pub component: &'static str,
    /// The holder identity: the operator matches it against existing nodes or pods.
    pub holder: String,
    /// How often the Lease is written; it is valid three times as long.
    pub renew_interval: Duration,
}

impl GenerationLease {
    /// `sightline-<component>-<holder>`, lower-cased. A name over 253 characters is
    /// cut and keeps a hash of the whole holder so that two long holders stay apart.
    pub fn name(&self) -> String {
        let name = format!("sightline-{}-{}", self.component, self.holder.to_ascii_lowercase());
        if name.len() <= MAX_NAME {
            return name;
        }
        let digest = format!("{:016x}", fnv1a(self.holder.as_bytes()));
        let kept = MAX_NAME - digest.len() - 1;
        format!("{}-{digest}", name[..kept].trim_end_matches(['-', '.']))
    }

    /// The server-side apply field manager: one per component.
    pub fn manager(&self) -> String {
        format!("sightline-{}", self.component)
    }

    /// The Lease as this component writes it (server-side apply owns exactly these fields).
    pub fn lease(&self, generation: Option<i64>, now: Timestamp) -> Lease {
        let annotations = generation.map(|g| BTreeMap::from([(GENERATION_ANNOTATION.to_owned(), g.to_string())]));
        let duration = (self.renew_interval.as_secs().max(1) * 3).min(i32::MAX as u64) as i32;
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name()),
                labels: Some(BTreeMap::from([(
                    COMPONENT_LABEL.to_owned(),
                    self.component.to_owned(),
                )])),
                annotations,
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.holder.clone()),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(now)),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Writes the Lease at once, whenever the generation changes and every renew
    /// interval, until the generation's sender is gone. Server-side apply creates it
    /// the first time and never conflicts with an older version of itself; a failed
    /// write is retried at the next renewal.
    pub async fn report(self, api: Api<Lease>, mut generation: watch::Receiver<Option<i64>>) {
        let params = PatchParams::apply(&self.manager()).force();
        let name = self.name();
        let mut failing = false;
        loop {
            let current = *generation.borrow_and_update();
            let lease = self.lease(current, Timestamp::now());
            match api.patch(&name, &params, &Patch::Apply(&lease)).await {
                Ok(_) => {
                    if failing {
                        tracing::info!(lease = name, "generation Lease written again");
                    }
                    failing = false;
                    tracing::debug!(lease = name, generation = ?current, "generation Lease written");
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, lease = name, "cannot write the generation Lease");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                changed = generation.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(self.renew_interval) => {}
            }
        }
    }
}

/// FNV-1a: stable across builds and versions, unlike std's hasher, so a restarted
/// component finds its Lease again.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn agent(holder: &str) -> GenerationLease {
        GenerationLease {
            component: "agent",
            holder: holder.to_owned(),
            renew_interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_lease_carries_label_generation_and_timing() {
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        let lease = agent("Node-A").lease(Some(5), now);
        assert_eq!(lease.metadata.name.as_deref(), Some("sightline-agent-node-a"));
        assert_eq!(lease.metadata.labels.unwrap()["sightline.dev/component"], "agent");
        assert_eq!(
            lease.metadata.annotations.unwrap()["sightline.dev/config-generation"],
            "5"
        );
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("Node-A"));
        assert_eq!(spec.lease_duration_seconds, Some(30));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert!(agent("n").lease(None, now).metadata.annotations.is_none());
    }

    #[test]
    fn a_relay_pod_gets_its_own_name_label_and_manager() {
        let relay = GenerationLease {
            component: "relay",
            holder: "hubble-relay-7f9c-x2x8l".to_owned(),
            renew_interval: Duration::from_secs(5),
        };
        assert_eq!(relay.name(), "sightline-relay-hubble-relay-7f9c-x2x8l");
        assert_eq!(relay.manager(), "sightline-relay");
        let lease = relay.lease(Some(2), Timestamp::UNIX_EPOCH);
        assert_eq!(lease.metadata.labels.unwrap()["sightline.dev/component"], "relay");
        assert_eq!(lease.spec.unwrap().lease_duration_seconds, Some(15));
    }

    #[test]
    fn long_holders_stay_unique_and_valid() {
        let a = agent(&"a".repeat(300)).name();
        let b = agent(&("a".repeat(299) + "b")).name();
        assert!(a.len() <= 253 && b.len() <= 253);
        assert_ne!(a, b);
    }
}
