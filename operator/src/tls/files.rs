//! The operator's issuing code writing certificate files instead of Secrets, for
//! the README demo and process tests: the same CA, names, keys and rotation, so
//! what those exercise is what runs in a cluster.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::names::Leaf;
use super::plan::{Observed, SecretContents, Subjects, TlsPlan, plan};
use super::{CA_CRT, Lifetimes, TLS_CRT, TLS_KEY, TlsError};

/// Where each file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The CA bundle every consumer trusts (all CAs in force).
    pub ca: PathBuf,
    /// The agent's Hubble server certificate.
    pub agent_cert: PathBuf,
    /// Its key.
    pub agent_key: PathBuf,
    /// The relay's client certificate towards agents.
    pub relay_client_cert: PathBuf,
    /// Its key.
    pub relay_client_key: PathBuf,
    /// The relay's server certificate.
    pub relay_server_cert: PathBuf,
    /// Its key.
    pub relay_server_key: PathBuf,
    /// The metrics endpoints' server certificate.
    pub metrics_cert: PathBuf,
    /// Its key.
    pub metrics_key: PathBuf,
    /// For the `hubble` CLI (agents and the relay accept any client the CA signed).
    pub cli_cert: PathBuf,
    /// Its key.
    pub cli_key: PathBuf,
}

impl CertificateFiles {
    fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.crt"),
            agent_cert: dir.join("agent.crt"),
            agent_key: dir.join("agent.key"),
            relay_client_cert: dir.join("relay-client.crt"),
            relay_client_key: dir.join("relay-client.key"),
            relay_server_cert: dir.join("relay-server.crt"),
            relay_server_key: dir.join("relay-server.key"),
            metrics_cert: dir.join("metrics.crt"),
            metrics_key: dir.join("metrics.key"),
            cli_cert: dir.join("hubble-cli.crt"),
            cli_key: dir.join("hubble-cli.key"),
        }
    }

    fn leaf_paths(&self, leaf: Leaf) -> (&Path, &Path) {
        match leaf {
            Leaf::AgentServer => (&self.agent_cert, &self.agent_key),
            Leaf::RelayClient => (&self.relay_client_cert, &self.relay_client_key),
            Leaf::RelayServer => (&self.relay_server_cert, &self.relay_server_key),
            Leaf::MetricsServer => (&self.metrics_cert, &self.metrics_key),
            Leaf::Cli => (&self.cli_cert, &self.cli_key),
        }
    }
}

/// Issues into a directory and, called again later, renews and rotates there as
/// the operator would in a cluster (Secrets become files, replaced atomically).
#[derive(Debug)]
pub struct FileIssuer {
    files: CertificateFiles,
    subjects: Subjects,
    lifetimes: Lifetimes,
    state: Observed,
}

impl FileIssuer {
    /// Issues into `dir` (created if missing) for `cluster`'s names, with these lifetimes.
    pub fn new(dir: &Path, cluster: &str, lifetimes: Lifetimes) -> Result<Self, TlsError> {
        lifetimes.check()?;
        Ok(Self {
            files: CertificateFiles::in_dir(dir),
            subjects: Subjects {
                cluster: cluster.to_owned(),
                ..Subjects::default()
            },
            lifetimes,
            state: Observed::default(),
        })
    }

    /// Brings the files up to date for `now`; returns the plan that was applied.
    pub fn update(&mut self, now: OffsetDateTime) -> Result<TlsPlan, TlsError> {
        let plan = plan(&self.state, &self.subjects, &self.lifetimes, now)?;
        for write in &plan.writes {
            match Leaf::ALL.into_iter().find(|leaf| leaf.secret_name() == write.name) {
                Some(leaf) => {
                    self.state.leaves.insert(leaf, write.contents.clone());
                }
                None => self.state.ca = Some(write.contents.clone()),
            }
        }
        self.write_files()?;
        Ok(plan)
    }

    /// Where each file lives.
    pub fn files(&self) -> &CertificateFiles {
        &self.files
    }

    fn write_files(&self) -> Result<(), TlsError> {
        // The bundle first: a consumer that reloads between two files must already
        // trust whatever CA signed the leaf it reads next.
        if let Some(ca) = &self.state.ca {
            write_atomic(&self.files.ca, bytes(ca, CA_CRT))?;
        }
        for leaf in Leaf::ALL {
            if let Some(contents) = self.state.leaves.get(&leaf) {
                let (cert, key) = self.files.leaf_paths(leaf);
                // Key before certificate: a reader that sees the new certificate
                // must find its key already in place.
                write_atomic(key, bytes(contents, TLS_KEY))?;
                write_atomic(cert, bytes(contents, TLS_CRT))?;
            }
        }
        Ok(())
    }
}

fn bytes<'a>(contents: &'a SecretContents, key: &str) -> &'a [u8] {
    contents.data.get(key).map(Vec::as_slice).unwrap_or_default()
}

fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    let error = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    if std::fs::read(path).is_ok_and(|current| current == contents) {
        return Ok(());
    }
    let staged = path.with_extension("tmp");
    std::fs::write(&staged, contents).map_err(error)?;
    std::fs::rename(&staged, path).map_err(error)
}

/// A full set of certificate files in `dir`, valid for a year, for a cluster named
/// `cluster` (`default` in the demo).
pub fn write_certificate_files(dir: &Path, cluster: &str) -> Result<CertificateFiles, TlsError> {
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
    let mut issuer = FileIssuer::new(
        dir,
        cluster,
        Lifetimes {
            ca_validity: HOUR * 24 * 365 * 3,
            cert_validity: HOUR * 24 * 365,
            renew_before: HOUR * 24 * 30,
            propagation: std::time::Duration::from_secs(120),
        },
    )?;
    issuer.update(OffsetDateTime::now_utc())?;
    Ok(issuer.files().clone())
}
