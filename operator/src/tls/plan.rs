//! Given the Secrets as they are and a time, what to write: the pure heart of the
//! TLS reconcile. The controller reads Secrets, calls [`plan`], writes the result.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::material::{CertInfo, KeyPairPem, inspect, inspect_bundle, issue_leaf, key_matches, signed_by};
use super::names::{CA_SECRET, Leaf};
use super::rotation::{self, CaEvent, CaPhase, CaState};
use super::{CA_CRT, Lifetimes, TLS_CRT, TLS_KEY, TlsError};
use crate::crd::CertificateStatus;

/// A Secret's data and annotations, as the plan sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretContents {
    /// Data keys and their bytes.
    pub data: BTreeMap<String, Vec<u8>>,
    /// Annotations (the CA's rotation phase lives there).
    pub annotations: BTreeMap<String, String>,
}

impl SecretContents {
    fn text(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(|bytes| std::str::from_utf8(bytes).ok())
    }
}

/// The TLS Secrets that exist now (a missing leaf is simply absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// The CA Secret, if present.
    pub ca: Option<SecretContents>,
    /// Each leaf Secret present.
    pub leaves: BTreeMap<Leaf, SecretContents>,
}

/// Names that go into the certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    /// The cluster name, in every certificate's names.
    pub cluster: String,
    /// DNS names the spec adds to server certificates.
    pub extra_dns_names: Vec<String>,
    /// IP addresses the spec adds to server certificates.
    pub extra_ip_addresses: Vec<String>,
}

/// Why a leaf is (re-)issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueReason {
    /// The Secret or one of its keys does not exist.
    Missing,
    /// The certificate does not parse or its key is not its own (edited by hand).
    Invalid,
    /// The subject names the spec asks for changed.
    NamesChanged,
    /// Less than `renewBefore` remains.
    Expiring,
    /// A new CA signs now.
    CaRotated,
}

impl IssueReason {
    /// The reason as the Event and the status spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            IssueReason::Missing => "Missing",
            IssueReason::Invalid => "Invalid",
            IssueReason::NamesChanged => "NamesChanged",
            IssueReason::Expiring => "Expiring",
            IssueReason::CaRotated => "CaRotated",
        }
    }
}

/// What to do with one leaf Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafAction {
    /// Nothing to do.
    Keep,
    /// The certificate stays; `ca.crt` gets the current bundle.
    UpdateBundle,
    /// A new certificate is issued.
    Issue(IssueReason),
}

/// One Secret to create or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretWrite {
    /// The Secret's name.
    pub name: &'static str,
    /// Its new contents.
    pub contents: SecretContents,
}

/// Something worth a Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsEvent {
    /// The Secret concerned.
    pub secret: &'static str,
    /// The Event's reason.
    pub reason: &'static str,
    /// The Event's message.
    pub message: String,
}

/// Everything one TLS reconcile decides.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsPlan {
    /// Secrets to create or replace.
    pub writes: Vec<SecretWrite>,
    /// Events to publish.
    pub events: Vec<TlsEvent>,
    /// The status of each certificate after the writes.
    pub certificates: Vec<CertificateStatus>,
    /// CA rotation steps taken (for the rotations counter).
    pub ca_event: Option<CaEvent>,
    /// When to look again if nothing else changes.
    pub next_check: OffsetDateTime,
}

fn to_time(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}

/// Decides one leaf against the signing CA.
pub fn leaf_action(
    existing: Option<&SecretContents>,
    names: &[String],
    signer: &CertInfo,
    phase: CaPhase,
    bundle: &str,
    now: OffsetDateTime,
    renew_before: Duration,
) -> LeafAction {
    let Some(existing) = existing else {
        return LeafAction::Issue(IssueReason::Missing);
    };
    let (Some(cert), Some(key)) = (existing.text(TLS_CRT), existing.text(TLS_KEY)) else {
        return LeafAction::Issue(IssueReason::Missing);
    };
    let Ok(info) = inspect(cert, "leaf") else {
        return LeafAction::Issue(IssueReason::Invalid);
    };
    if !key_matches(&info, key) {
        return LeafAction::Issue(IssueReason::Invalid);
    }
    if info.subject_names != names {
        return LeafAction::Issue(IssueReason::NamesChanged);
    }
    if info.not_after - now < to_time(renew_before) {
        return LeafAction::Issue(IssueReason::Expiring);
    }
    // While the next CA is only being introduced, leaves of the current one stay.
    if phase != CaPhase::Introducing && !signed_by(&info, signer) {
        return LeafAction::Issue(IssueReason::CaRotated);
    }
    if existing.text(CA_CRT) != Some(bundle) {
        return LeafAction::UpdateBundle;
    }
    LeafAction::Keep
}

/// CA certificates still valid in the leaves' bundles: the trust consumers have
/// when the CA Secret itself was deleted.
fn trust_in_leaf_bundles(observed: &Observed, now: OffsetDateTime) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for contents in observed.leaves.values() {
        let Some(bundle) = contents.text(CA_CRT) else { continue };
        for cert in rotation::split_pem(bundle.to_owned()) {
            let usable = inspect(&cert, "ca.crt").is_ok_and(|info| info.is_ca && info.not_after > now);
            if usable && !found.contains(&cert) {
                found.push(cert);
            }
        }
    }
    found
}

fn leaf_signed_by_any(contents: &SecretContents, cas: &[CertInfo]) -> bool {
    contents
        .text(TLS_CRT)
        .and_then(|cert| inspect(cert, "leaf").ok())
        .is_some_and(|info| cas.iter().any(|ca| signed_by(&info, ca)))
}

/// What to write so every Secret is present, valid, renewed in time and trusted
/// across a CA rotation.
pub fn plan(
    observed: &Observed,
    subjects: &Subjects,
    lifetimes: &Lifetimes,
    now: OffsetDateTime,
) -> Result<TlsPlan, TlsError> {
    let current = observed
        .ca
        .as_ref()
        .and_then(|ca| CaState::decode(&ca.data, &ca.annotations));
    let retiring_infos = match &current {
        Some(state) => state
            .retiring
            .iter()
            .filter_map(|cert| inspect(cert, "retiring CA").ok())
            .collect::<Vec<_>>(),
        None => Vec::new(),
    };
    let old_leaves_remain = observed
        .leaves
        .values()
        .any(|contents| leaf_signed_by_any(contents, &retiring_infos));
    let recovered = if current.is_none() {
        trust_in_leaf_bundles(observed, now)
    } else {
        Vec::new()
    };
    // A CA Secret that vanished or broke while certificates exist is a restore.
    let ca_restored = current.is_none() && (observed.ca.is_some() || !observed.leaves.is_empty());
    let (state, ca_event) = rotation::step(current, old_leaves_remain, recovered, now, lifetimes)?;
    let signer = state.signer_info()?;
    let bundle = state.bundle();

    let mut writes = Vec::new();
    let mut events = Vec::new();
    let (ca_data, ca_annotations) = state.encode();
    let ca_contents = SecretContents {
        data: ca_data,
        annotations: ca_annotations,
    };
    if observed.ca.as_ref() != Some(&ca_contents) {
        writes.push(SecretWrite {
            name: CA_SECRET,
            contents: ca_contents,
        });
    }
    if let Some(event) = ca_event {
        events.push(ca_event_record(event, ca_restored));
    }

    let mut certificates = vec![CertificateStatus {
        secret: CA_SECRET.to_owned(),
        subject_names: Vec::new(),
        not_after: rfc3339(signer.not_after),
    }];
    let mut next_check = rotation::next_check(&state, now, lifetimes);
    for leaf in Leaf::ALL {
        let names = leaf.subject_names(
            &subjects.cluster,
            &subjects.extra_dns_names,
            &subjects.extra_ip_addresses,
        );
        let existing = observed.leaves.get(&leaf);
        let action = leaf_action(
            existing,
            &names,
            &signer,
            state.phase,
            &bundle,
            now,
            lifetimes.renew_before,
        );
        let (cert, key) = match (action, existing) {
            (LeafAction::Issue(reason), _) => {
                let issued = issue_leaf(&state.signer, &names, leaf.usage(), now, lifetimes.cert_validity)?;
                events.push(TlsEvent {
                    secret: leaf.secret_name(),
                    reason: if reason == IssueReason::Expiring || reason == IssueReason::CaRotated {
                        "CertificateRenewed"
                    } else {
                        "CertificateIssued"
                    },
                    message: format!(
                        "{} issued for {} ({})",
                        leaf.secret_name(),
                        names.join(", "),
                        reason.as_str()
                    ),
                });
                (issued.cert, issued.key)
            }
            (_, Some(existing)) => (
                existing.text(TLS_CRT).unwrap_or_default().to_owned(),
                existing.text(TLS_KEY).unwrap_or_default().to_owned(),
            ),
            (_, None) => continue,
        };
        if action != LeafAction::Keep {
            writes.push(SecretWrite {
                name: leaf.secret_name(),
                contents: leaf_contents(
                    &KeyPairPem {
                        cert: cert.clone(),
                        key,
                    },
                    &bundle,
                ),
            });
        }
        let info = inspect(&cert, leaf.secret_name())?;
        next_check = next_check.min(info.not_after - to_time(lifetimes.renew_before));
        certificates.push(CertificateStatus {
            secret: leaf.secret_name().to_owned(),
            subject_names: info.subject_names,
            not_after: rfc3339(info.not_after),
        });
    }
    Ok(TlsPlan {
        writes,
        events,
        certificates,
        ca_event,
        next_check: next_check.max(now),
    })
}

/// A leaf Secret as Hubble mounts it.
pub fn leaf_contents(pair: &KeyPairPem, bundle: &str) -> SecretContents {
    let mut data = BTreeMap::new();
    data.insert(TLS_CRT.to_owned(), pair.cert.clone().into_bytes());
    data.insert(TLS_KEY.to_owned(), pair.key.clone().into_bytes());
    data.insert(CA_CRT.to_owned(), bundle.as_bytes().to_vec());
    SecretContents {
        data,
        annotations: BTreeMap::new(),
    }
}

fn ca_event_record(event: CaEvent, restored: bool) -> TlsEvent {
    let (reason, message) = match event {
        CaEvent::Issued if restored => ("CaRestored", "the CA Secret was unreadable; a new CA was issued"),
        CaEvent::Issued => ("CaIssued", "a new CA was issued"),
        CaEvent::RotationStarted => ("CaRotationStarted", "a next CA was added to every ca.crt bundle"),
        CaEvent::SignerSwitched => ("CaSignerSwitched", "the next CA now signs; leaves are re-issued"),
        CaEvent::OldCaRetired => ("CaRotated", "the old CA left the bundles; rotation complete"),
    };
    TlsEvent {
        secret: CA_SECRET,
        reason,
        message: message.to_owned(),
    }
}

/// A time as RFC 3339, as Kubernetes status fields carry it.
pub fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

/// Every CA a leaf Secret's bundle holds.
pub fn bundle_infos(contents: &SecretContents) -> Vec<CertInfo> {
    contents
        .text(CA_CRT)
        .and_then(|bundle| inspect_bundle(bundle, "ca.crt").ok())
        .unwrap_or_default()
}
