//! TLS material that follows its files: certificates and CAs are re-read when the
//! files change (Kubernetes swaps secret mounts under running pods), and every new
//! handshake uses the newest valid version. A broken update is logged and ignored;
//! the last good configuration stays in force. Only TLS 1.3 is offered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// How often watched files are compared with what was loaded.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
/// Why TLS material could not be loaded; each names the file to fix.
pub enum TlsError {
    #[error("reading {path}: {source}")]
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    /// A certificate file holds no certificate.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    #[error("{path}: no PEM private key found")]
    /// A key file holds no private key.
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    #[error("{path}: invalid PEM: {reason}")]
    /// A file is not valid PEM.
    Pem {
        /// The file.
        path: PathBuf,
        /// The PEM parser's message.
        reason: String,
    },
    #[error("{path}: certificate not usable as a trust anchor: {source}")]
    /// A CA certificate that rustls refuses as a trust anchor.
    TrustAnchor {
        /// The CA file.
        path: PathBuf,
        /// Why rustls refused it.
        source: rustls::Error,
    },
    #[error("certificate and key do not form a usable identity: {0}")]
    /// The key does not belong to the certificate, or is of an unsupported kind.
    Identity(rustls::Error),
    #[error("client certificate verifier: {0}")]
    /// No client verifier could be built from the CAs given.
    Verifier(String),
}

/// A certificate chain and its private key, as files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPairFiles {
    /// Certificate chain file (PEM).
    pub cert: PathBuf,
    /// Private key file (PEM).
    pub key: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Pem {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| match err {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey { path: path.to_owned() },
        other => TlsError::Pem {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    })
}

fn root_store(ca_files: &[PathBuf]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for path in ca_files {
        for cert in certificates(path)? {
            roots.add(cert).map_err(|source| TlsError::TrustAnchor {
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(roots)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Client side: trust `ca_files`, present `identity` when given (mutual TLS).
pub fn client_config(ca_files: &[PathBuf], identity: Option<&KeyPairFiles>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Identity)?
        .with_root_certificates(root_store(ca_files)?);
    let mut config = match identity {
        Some(files) => builder
            .with_client_auth_cert(certificates(&files.cert)?, private_key(&files.key)?)
            .map_err(TlsError::Identity)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Server side: present `identity`; with `client_ca_files`, require client
/// certificates signed by them.
pub fn server_config(identity: &KeyPairFiles, client_ca_files: &[PathBuf]) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Identity)?;
    let builder = if client_ca_files.is_empty() {
        builder.with_no_client_auth()
    } else {
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(root_store(client_ca_files)?), provider())
            .build()
            .map_err(|err| TlsError::Verifier(err.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(certificates(&identity.cert)?, private_key(&identity.key)?)
        .map_err(TlsError::Identity)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A configuration rebuilt whenever the bytes of its files change.
pub struct Reloading<T> {
    current: ArcSwap<T>,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Loads once (an error here is fatal to the caller), then re-checks `files`
    /// every `interval` for as long as the returned handle lives.
    pub fn watch<F>(what: &'static str, files: Vec<PathBuf>, interval: Duration, load: F) -> Result<Arc<Self>, TlsError>
    where
        F: Fn() -> Result<T, TlsError> + Send + 'static,
    {
        let snapshot = |files: &[PathBuf]| files.iter().map(|f| std::fs::read(f).ok()).collect::<Vec<_>>();
        let mut seen = snapshot(&files);
        let this = Arc::new(Self {
            current: ArcSwap::from_pointee(load()?),
        });
        let weak: Weak<Self> = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(this) = weak.upgrade() else { return };
                let now = snapshot(&files);
                if now == seen {
                    continue;
                }
                match load() {
                    Ok(fresh) => {
                        this.current.store(Arc::new(fresh));
                        tracing::info!(what, "TLS material reloaded");
                    }
                    Err(err) => {
                        tracing::warn!(what, %err, "TLS files changed but do not load; keeping the previous ones")
                    }
                }
                seen = now;
            }
        });
        Ok(this)
    }

    /// The material loaded last; callers take it per connection so a reload applies to new ones.
    pub fn current(&self) -> Arc<T> {
        self.current.load_full()
    }
}
