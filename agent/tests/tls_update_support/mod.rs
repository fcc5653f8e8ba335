//! What the agent's and the relay's broken-certificate-update tests share (the relay
//! includes this file by `#[path]`): a server identity written to files as a mounted
//! Secret would be, the broken updates both servers must refuse, the certificate a
//! new client is shown, and the log lines that say what the server did.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

/// Logged when changed files do not load (`sightline_common::tls::Reloading`).
pub const REFUSED: &str = "TLS files changed but do not load; keeping the previous ones";
/// Logged when changed files were taken.
pub const RELOADED: &str = "TLS material reloaded";

/// Everything the process logs, as text.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Installs the global subscriber: once per test binary.
    pub fn install() -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    }

    /// Lines that contain every one of `needles`.
    pub fn lines_with(&self, needles: &[&str]) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .count()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub type Ca = CertifiedIssuer<'static, KeyPair>;

pub fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A certificate and its key, as PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Leaf {
    /// A leaf for `name`, signed by `ca`.
    pub fn issue(ca: &Ca, name: &str, usage: ExtendedKeyUsagePurpose) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        Leaf {
            cert: params.signed_by(&key, ca).unwrap().pem(),
            key: key.serialize_pem(),
        }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.cert.as_bytes()).unwrap()
    }
}

/// One of a server's identity files.
#[derive(Debug, Clone, Copy)]
pub enum File {
    Cert,
    Key,
}

/// A server's certificate and key files in a directory of their own.
pub struct ServerFiles {
    dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ServerFiles {
    pub fn write(leaf: &Leaf) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        std::fs::write(&cert, &leaf.cert).unwrap();
        std::fs::write(&key, &leaf.key).unwrap();
        ServerFiles { dir, cert, key }
    }

    /// Writes another file (a CA bundle) beside the identity; returns its path.
    pub fn write_beside(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Replaces one file in one step (write aside, rename over), so the server's
    /// watcher sees either the old or the new bytes and re-reads exactly once.
    pub fn replace(&self, file: File, contents: &[u8]) {
        let path = match file {
            File::Cert => &self.cert,
            File::Key => &self.key,
        };
        let aside = path.with_extension("new");
        std::fs::write(&aside, contents).unwrap();
        std::fs::rename(&aside, path).unwrap();
    }
}

/// The updates a server must refuse, in this order, starting from `first`'s files:
/// each changes one file, so each is re-read and refused exactly once (the n-th
/// refusal is the n-th step's). Afterwards the files hold `second`'s certificate and
/// `first`'s key: replacing the key with `second`'s is the good update.
pub fn broken_updates<'a>(first: &'a Leaf, second: &'a Leaf) -> [(&'static str, File, &'a [u8]); 4] {
    [
        ("a garbage key", File::Key, b"not a key"),
        ("a garbage certificate", File::Cert, b"not a certificate"),
        (
            "the old key beside a garbage certificate",
            File::Key,
            first.key.as_bytes(),
        ),
        (
            "a certificate that does not match the key",
            File::Cert,
            second.cert.as_bytes(),
        ),
    ]
}

/// The leaf certificate the server at `address` presents to a new TLS client.
pub async fn presented_leaf(
    address: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    server_name: &'static str,
) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(address).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(server_name).unwrap(), tcp)
        .await
        .expect("a new client completes the handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}
