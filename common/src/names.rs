//! Hubble's naming conventions, in one place: node names as clients see them and
//! the TLS server names that Hubble's certificates, the relay and the CLI agree on.
//! Dots in a node or cluster name become dashes in a DNS label, as in Cilium.

/// The cluster name Hubble treats as "no cluster": node names carry no prefix.
pub const DEFAULT_CLUSTER: &str = "default";

/// The gRPC health service Hubble's servers report SERVING (the agent's and the
/// relay's, so probes and tools written for Hubble ask the same name). The whole
/// server (the empty name, what Kubernetes' gRPC probe asks) follows the same status.
pub const HEALTH_SERVICE: &str = "hubble.server.Observer";

/// Domain of the agents' server certificates.
pub const AGENT_TLS_DOMAIN: &str = "hubble-grpc.cilium.io";
/// Domain of the relay's client and server certificates.
pub const RELAY_TLS_DOMAIN: &str = "hubble-relay.cilium.io";
/// Domain of the metrics servers' certificates.
pub const METRICS_TLS_DOMAIN: &str = "hubble-metrics.cilium.io";
/// Domain of Hubble UI's client certificate.
pub const UI_TLS_DOMAIN: &str = "hubble-ui.cilium.io";

/// A name as one DNS label: dots become dashes; empty means the default cluster.
fn label(name: &str) -> String {
    if name.is_empty() {
        DEFAULT_CLUSTER.to_owned()
    } else {
        name.replace('.', "-")
    }
}

/// Hubble's `GetAbsoluteNodeName` / `Node.Fullname()`: `<cluster>/<node>`, without
/// the prefix in the default (or an unnamed) cluster.
pub fn absolute_node_name(cluster: &str, node: &str) -> String {
    if cluster.is_empty() || cluster == DEFAULT_CLUSTER {
        node.to_owned()
    } else {
        format!("{cluster}/{node}")
    }
}

/// The node name without its cluster prefix (the inverse of [`absolute_node_name`]).
pub fn relative_node_name<'a>(cluster: &str, node: &'a str) -> &'a str {
    node.strip_prefix(cluster)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(node)
}

/// The name a relay verifies one agent's certificate against:
/// `<node>.<cluster>.hubble-grpc.cilium.io`.
pub fn agent_server_name(node: &str, cluster: &str) -> String {
    format!("{}.{}.{AGENT_TLS_DOMAIN}", label(node), label(cluster))
}

/// The name on the agents' server certificate, which covers every agent and the
/// peer service: `*.<cluster>.hubble-grpc.cilium.io`.
pub fn agent_wildcard_server_name(cluster: &str) -> String {
    format!("*.{}.{AGENT_TLS_DOMAIN}", label(cluster))
}

/// The name the relay dials the agents' peer Service with.
pub fn peer_service_server_name(cluster: &str) -> String {
    format!("hubble-peer.{}.{AGENT_TLS_DOMAIN}", label(cluster))
}

/// The name on the relay's client and server certificates: `*.hubble-relay.cilium.io`.
pub fn relay_wildcard_name() -> String {
    format!("*.{RELAY_TLS_DOMAIN}")
}

/// The server name Hubble UI and the CLI use for the relay: `ui.hubble-relay.cilium.io`.
pub fn relay_server_name() -> String {
    format!("ui.{RELAY_TLS_DOMAIN}")
}

/// The relay's client name when it dials agents: `client.hubble-relay.cilium.io`.
pub fn relay_client_name() -> String {
    format!("client.{RELAY_TLS_DOMAIN}")
}

/// The metrics server's certificate name: `<cluster>.hubble-metrics.cilium.io`.
pub fn metrics_server_name(cluster: &str) -> String {
    format!("{}.{METRICS_TLS_DOMAIN}", label(cluster))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_carry_the_cluster_only_outside_the_default_one() {
        assert_eq!(absolute_node_name("default", "n1"), "n1");
        assert_eq!(absolute_node_name("", "n1"), "n1");
        assert_eq!(absolute_node_name("prod", "n1"), "prod/n1");
        assert_eq!(relative_node_name("prod", "prod/n1"), "n1");
        assert_eq!(relative_node_name("prod", "n1"), "n1");
        assert_eq!(relative_node_name("prod", "production/n1"), "production/n1");
    }

    #[test]
    fn server_names_turn_dots_into_dashes() {
        assert_eq!(
            agent_server_name("node.a", "prod.eu"),
            "node-a.prod-eu.hubble-grpc.cilium.io"
        );
        assert_eq!(agent_server_name("n", ""), "n.default.hubble-grpc.cilium.io");
        assert_eq!(agent_wildcard_server_name("prod.eu"), "*.prod-eu.hubble-grpc.cilium.io");
        assert_eq!(
            peer_service_server_name("eu.prod"),
            "hubble-peer.eu-prod.hubble-grpc.cilium.io"
        );
        assert_eq!(relay_wildcard_name(), "*.hubble-relay.cilium.io");
        assert_eq!(relay_server_name(), "ui.hubble-relay.cilium.io");
        assert_eq!(metrics_server_name("default"), "default.hubble-metrics.cilium.io");
    }
}
