//! A demo CA and the certificates Hubble's conventions call for: agents serve
//! `*.default.hubble-grpc.cilium.io`, the relay presents a client certificate, and so
//! does a user's `hubble` CLI talking to an agent directly.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use sightline_common::names;

use super::DemoError;

/// The demo's agents run in the default cluster.
const CLUSTER: &str = sightline_common::names::DEFAULT_CLUSTER;

/// The name a client must ask for (`--tls-server-name`) when connecting to `node`'s agent.
pub fn agent_server_name(node: &str) -> String {
    names::agent_server_name(node, CLUSTER)
}

pub struct Pki {
    pub ca: PathBuf,
    pub agent_cert: PathBuf,
    pub agent_key: PathBuf,
    pub relay_cert: PathBuf,
    pub relay_key: PathBuf,
    /// For the `hubble` CLI: agents accept any client certificate the demo CA signed.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> DemoError + '_ {
    move |err| DemoError::Setup(format!("{what}: {err}"))
}

impl Pki {
    pub fn write(dir: &Path) -> Result<Self, DemoError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(setup("CA"))?;
        params.distinguished_name.push(DnType::CommonName, "Sightline demo CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().map_err(setup("CA key"))?;
        let ca_cert = params.self_signed(&ca_key).map_err(setup("CA certificate"))?;
        let issuer = Issuer::new(params, ca_key);
        let write = |name: &str, text: String| -> Result<PathBuf, DemoError> {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(setup("writing certificates"))?;
            Ok(path)
        };
        let leaf = |names: &[&str]| -> Result<(String, String), DemoError> {
            let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .map_err(setup("certificate"))?;
            let key = KeyPair::generate().map_err(setup("key"))?;
            let cert = params.signed_by(&key, &issuer).map_err(setup("signing"))?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (agent_cert, agent_key) = leaf(&[&names::agent_wildcard_server_name(CLUSTER)])?;
        let (relay_cert, relay_key) = leaf(&[&names::relay_wildcard_name()])?;
        let (client_cert, client_key) = leaf(&["hubble-cli.sightline-demo"])?;
        Ok(Self {
            ca: write("ca.crt", ca_cert.pem())?,
            agent_cert: write("agent.crt", agent_cert)?,
            agent_key: write("agent.key", agent_key)?,
            relay_cert: write("relay.crt", relay_cert)?,
            relay_key: write("relay.key", relay_key)?,
            client_cert: write("hubble-cli.crt", client_cert)?,
            client_key: write("hubble-cli.key", client_key)?,
        })
    }
}
