//! A throwaway CA issuing Hubble-style certificates, written to files like mounted secrets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
}

pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn write_ca(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.cert_pem).unwrap();
        path
    }

    /// A leaf certificate for `names`, written as `<stem>.crt` / `<stem>.key` in `dir`.
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> Issued {
        let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let issued = Issued {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }
}

/// A server configuration like an agent's: its certificate, requiring clients signed by `client_ca`.
pub fn agent_server_config(identity: &Issued, client_ca: &Path) -> Arc<rustls::ServerConfig> {
    let files = sightline_relay::tls::KeyPairFiles {
        cert: identity.cert.clone(),
        key: identity.key.clone(),
    };
    Arc::new(sightline_relay::tls::server_config(&files, &[client_ca.to_owned()]).unwrap())
}
