//! This node's Lease in the operator's namespace: the configuration generation the
//! agent runs, which the operator's `ConfigApplied` condition counts. The Lease
//! itself (name, label, renewal) is `sightline-common`'s, shared with the relay.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use sightline_common::generation_lease::GenerationLease;
use tokio::sync::watch;

/// The component label's value on the agents' Leases, which the operator lists.
pub(crate) const COMPONENT: &str = "agent";

/// Who writes this node's Lease: the agent, holding it as its node.
pub(crate) fn for_node(node: &str, renew_interval: Duration) -> GenerationLease {
    GenerationLease {
        component: COMPONENT,
        holder: node.to_owned(),
        renew_interval,
    }
}

/// Writes the node's Lease until the generation's sender is gone (see
/// [`GenerationLease::report`]).
pub(crate) async fn report(
    api: Api<Lease>,
    node: String,
    generation: watch::Receiver<Option<i64>>,
    renew_interval: Duration,
) {
    for_node(&node, renew_interval).report(api, generation).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_lease_is_named_for_its_node() {
        let lease = for_node("Node-A", Duration::from_secs(10));
        assert_eq!(lease.name(), "sightline-agent-node-a");
        assert_eq!(lease.manager(), "sightline-agent");
    }
}
