//! The TLS lifecycle: Hubble's Secrets and names, issuing with ECDSA P-256, the
//! plan of what to issue or renew at a given time, and the CA rotation with an
//! overlap so no consumer ever meets a certificate its bundle does not trust.

pub mod external;
pub mod files;
pub mod material;
pub mod names;
pub mod plan;
pub mod rotation;

use std::time::Duration;

pub use names::Leaf;

/// Everything that can go wrong with certificates.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a key: {0}")]
    /// A key pair could not be generated.
    KeyGeneration(rcgen::Error),
    #[error("issuing {what}: {source}")]
    /// A certificate could not be issued.
    Issue {
        /// Which certificate.
        what: String,
        /// rcgen's failure.
        source: rcgen::Error,
    },
    #[error("{what}: not a PEM certificate: {reason}")]
    /// A certificate does not parse.
    Parse {
        /// Which certificate.
        what: String,
        /// The parser's message.
        reason: String,
    },
    #[error("{what}: private key unusable: {source}")]
    /// A private key does not load.
    Key {
        /// Which key.
        what: String,
        /// rcgen's failure.
        source: rcgen::Error,
    },
    #[error("{field}: {value:?} is not a duration: {reason}")]
    /// A lifetime in the spec is not a duration.
    Duration {
        /// The spec field.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    #[error("spec.tls: {0}")]
    /// The lifetimes contradict each other.
    Lifetimes(String),
    #[error("writing {path}: {source}")]
    /// A certificate file could not be written.
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// How long things live and how early they are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// How long the CA is valid.
    pub ca_validity: Duration,
    /// How long leaf certificates are valid.
    pub cert_validity: Duration,
    /// How long before expiry a certificate is replaced.
    pub renew_before: Duration,
    /// How long a changed Secret takes to reach every pod that mounts it (kubelet
    /// sync period plus its cache TTL), and so how long each rotation step waits.
    pub propagation: Duration,
}

impl Lifetimes {
    /// Checks what the schema cannot: the rotation steps must fit in the lifetimes.
    pub fn check(&self) -> Result<(), TlsError> {
        if self.renew_before >= self.cert_validity {
            return Err(TlsError::Lifetimes(format!(
                "renewBefore ({}) must be shorter than certValidity ({})",
                fmt(self.renew_before),
                fmt(self.cert_validity)
            )));
        }
        if self.cert_validity >= self.ca_validity {
            return Err(TlsError::Lifetimes(format!(
                "certValidity ({}) must be shorter than caValidity ({})",
                fmt(self.cert_validity),
                fmt(self.ca_validity)
            )));
        }
        // A CA rotation takes two propagation waits, during which old leaves must stay
        // valid, and a renewed leaf must reach its pod before the old one expires.
        if self.renew_before <= self.propagation * 2 {
            return Err(TlsError::Lifetimes(format!(
                "renewBefore ({}) must exceed twice the Secret propagation delay ({})",
                fmt(self.renew_before),
                fmt(self.propagation)
            )));
        }
        Ok(())
    }
}

fn fmt(duration: Duration) -> String {
    sightline_common::duration::format_duration(duration)
}

/// Secret keys, as Hubble mounts them.
pub const TLS_CRT: &str = "tls.crt";
/// Secret key of the private key.
pub const TLS_KEY: &str = "tls.key";
/// Secret key of the CA bundle.
pub const CA_CRT: &str = "ca.crt";

#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod year_tests;
