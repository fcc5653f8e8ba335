//! TLS 1.3 for the TCP listener, with optional client-certificate verification and
//! certificates re-read when their files change.
//!
//! Each handshake takes the current `ServerConfig`; a reload swaps in a new one, so
//! open connections (and their streams) keep the config they were accepted with.
//! A reload that fails (half-written or broken files) keeps the previous config.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("invalid client CA configuration: {0}")]
    ClientCa(String),
}

/// Where the server's key material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client CAs; when non-empty every client must present a certificate they signed.
    pub client_cas: Vec<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert, &self.key].into_iter().chain(self.client_cas.iter())
    }

    /// Modification time and size of every file: a cheap change detector.
    fn fingerprint(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.paths()
            .map(|p| {
                std::fs::metadata(p)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
}

fn read_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// Builds a TLS 1.3-only server config with ALPN h2 from the files.
pub fn load(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read_error(&files.key, e))?;
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = if files.client_cas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for path in &files.client_cas {
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| read_error(path, e))?;
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The config new handshakes use, replaced when the files change.
#[derive(Clone)]
pub struct ReloadingConfig {
    current: Arc<RwLock<Arc<ServerConfig>>>,
}

impl ReloadingConfig {
    pub fn new(files: &TlsFiles) -> Result<Self, TlsError> {
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(load(files)?))),
        })
    }

    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(config) => config.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, config: ServerConfig) {
        let mut slot = match self.current.write() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(config);
    }

    /// Polls the files every `interval` and reloads after a change, until `shutdown`.
    pub async fn watch(self, files: TlsFiles, interval: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut seen = files.fingerprint();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            let now = files.fingerprint();
            if now == seen {
                continue;
            }
            match load(&files) {
                Ok(config) => {
                    self.replace(config);
                    seen = now;
                    tracing::info!(cert = %files.cert.display(), "reloaded TLS certificates");
                }
                // Keep `seen` so the next poll retries: the files may be mid-update.
                Err(error) => {
                    tracing::warn!(%error, "TLS files changed but cannot be loaded; keeping the previous ones")
                }
            }
        }
    }
}
