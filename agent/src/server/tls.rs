//! TLS 1.3 for the TCP listener, with optional client-certificate verification and
//! certificates re-read when their files change (`sightline_common::tls`).
//!
//! Each handshake takes the current `ServerConfig`; a reload swaps in a new one, so
//! open connections (and their streams) keep the config they were accepted with.
//! A reload that fails (half-written or broken files) keeps the previous config.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
pub(crate) use sightline_common::tls::TlsError;
use sightline_common::tls::{self, KeyPairFiles, Reloading};

/// Where the server's key material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client CAs; when non-empty every client must present a certificate they signed.
    pub client_cas: Vec<PathBuf>,
}

/// Loads the server configuration now (an error is fatal at startup), then checks
/// the files every `interval` while the returned handle lives.
pub(crate) fn reloading(files: &TlsFiles, interval: Duration) -> Result<Arc<Reloading<ServerConfig>>, TlsError> {
    let identity = KeyPairFiles {
        cert: files.cert.clone(),
        key: files.key.clone(),
    };
    let client_cas = files.client_cas.clone();
    let watched = [&files.cert, &files.key]
        .into_iter()
        .chain(&files.client_cas)
        .cloned()
        .collect();
    Reloading::watch("agent server certificate", watched, interval, move || {
        tls::server_config(&identity, &client_cas)
    })
}
