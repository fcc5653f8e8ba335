//! Which certificates exist, the Secrets that hold them and the names they carry
//! (Hubble's, so `hubble`, `hubble-relay` and Hubble UI accept them).

use sightline_common::names;

/// The Secret holding the CA (and, during a rotation, the next one).
pub const CA_SECRET: &str = "sightline-ca";

/// A leaf certificate the operator manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leaf {
    /// The agents' gRPC server.
    AgentServer,
    /// The relay, dialling agents.
    RelayClient,
    /// The relay's own API (for Hubble UI and the CLI).
    RelayServer,
    /// The agents' metrics endpoint.
    MetricsServer,
    /// People using the `hubble` CLI against agents or the relay.
    Cli,
}

/// What a certificate is used for, which decides its extended key usages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// TLS server authentication.
    Server,
    /// TLS client authentication.
    Client,
}

impl Leaf {
    /// Every leaf certificate the operator issues.
    pub const ALL: [Leaf; 5] = [
        Leaf::AgentServer,
        Leaf::RelayClient,
        Leaf::RelayServer,
        Leaf::MetricsServer,
        Leaf::Cli,
    ];

    /// Hubble's Secret name for this certificate.
    pub fn secret_name(self) -> &'static str {
        match self {
            Leaf::AgentServer => "hubble-server-certs",
            Leaf::RelayClient => "hubble-relay-client-certs",
            Leaf::RelayServer => "hubble-relay-server-certs",
            Leaf::MetricsServer => "hubble-metrics-server-certs",
            Leaf::Cli => "sightline-cli-certs",
        }
    }

    /// Whether the certificate serves or authenticates a client.
    pub fn usage(self) -> Usage {
        match self {
            Leaf::AgentServer | Leaf::RelayServer | Leaf::MetricsServer => Usage::Server,
            Leaf::RelayClient | Leaf::Cli => Usage::Client,
        }
    }

    /// The subject alternative names; the agents' certificate also carries the
    /// user's extra DNS names and IPs.
    pub fn subject_names(self, cluster: &str, extra_dns: &[String], extra_ips: &[String]) -> Vec<String> {
        match self {
            Leaf::AgentServer => std::iter::once(names::agent_wildcard_server_name(cluster))
                .chain(extra_dns.iter().cloned())
                .chain(extra_ips.iter().cloned())
                .collect(),
            Leaf::RelayClient | Leaf::RelayServer => vec![names::relay_wildcard_name()],
            Leaf::MetricsServer => vec![names::metrics_server_name(cluster)],
            Leaf::Cli => vec![CLI_CLIENT_NAME.to_owned()],
        }
    }
}

/// The CLI client certificate's name; agents and the relay check only the CA chain
/// of client certificates, so this name is for audit logs.
pub const CLI_CLIENT_NAME: &str = "hubble-cli.sightline.dev";
