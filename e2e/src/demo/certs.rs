//! The demo's certificates, issued by the operator's own code: agents serve
//! `*.default.hubble-grpc.cilium.io`, the relay presents a client certificate, and so
//! does a user's `hubble` CLI talking to an agent directly.

use std::path::{Path, PathBuf};

use sightline_common::names;

use super::DemoError;

/// The demo's agents run in the default cluster.
const CLUSTER: &str = sightline_common::names::DEFAULT_CLUSTER;

/// The name a client must ask for (`--tls-server-name`) when connecting to `node`'s agent.
pub(crate) fn agent_server_name(node: &str) -> String {
    names::agent_server_name(node, CLUSTER)
}

/// The PEM files of the demo's certificates, written into one directory.
pub struct Pki {
    /// The CA every other certificate is signed by; agents trust clients it signed.
    pub ca: PathBuf,
    /// The agents' server certificate, for `*.default.hubble-grpc.cilium.io`.
    pub agent_cert: PathBuf,
    /// The key of `agent_cert`.
    pub agent_key: PathBuf,
    /// The relay's client certificate for dialling agents (`--tls-hubble-client-cert-file`).
    pub relay_cert: PathBuf,
    /// The key of `relay_cert`.
    pub relay_key: PathBuf,
    /// For the `hubble` CLI: agents accept any client certificate the demo CA signed.
    pub client_cert: PathBuf,
    /// The key of `client_cert`.
    pub client_key: PathBuf,
}

impl Pki {
    /// The certificates come from the operator's issuing code, as in a cluster:
    /// the same CA, names and P-256 keys as the Secrets it reconciles.
    pub fn write(dir: &Path) -> Result<Self, DemoError> {
        let files = sightline_operator::tls::files::write_certificate_files(dir, CLUSTER)
            .map_err(|error| DemoError::Setup(format!("issuing the demo certificates: {error}")))?;
        Ok(Self {
            ca: files.ca,
            agent_cert: files.agent_cert,
            agent_key: files.agent_key,
            relay_cert: files.relay_client_cert,
            relay_key: files.relay_client_key,
            client_cert: files.cli_cert,
            client_key: files.cli_key,
        })
    }
}
