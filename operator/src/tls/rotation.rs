//! The CA and its rotation, as an explicit state machine:
//!
//! ```text
//! Stable{signer}  --signer has < certValidity left-->  Introducing{signer, next}
//!   (bundle: signer)                                     (bundle: signer + next; leaves still from signer)
//! Introducing  --propagation elapsed-->  Reissuing{signer = next, retiring = old}
//!                                         (bundle: next + old; every leaf re-issued from next)
//! Reissuing  --no leaf from old left, then propagation elapsed-->  Stable{next}
//! ```
//!
//! Each step waits for the previous Secret change to reach every pod, so a peer
//! never presents a leaf whose CA is missing from the other side's bundle.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::material::{CertInfo, KeyPairPem, inspect, issue_ca};
use super::{CA_CRT, Lifetimes, TLS_CRT, TLS_KEY, TlsError};

/// Where the CA is in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaPhase {
    /// One CA signs and is trusted.
    Stable,
    /// A next CA is trusted alongside, not yet signing.
    Introducing,
    /// The next CA signs; the old one is still trusted until its leaves are gone.
    Reissuing,
}

impl CaPhase {
    fn as_str(self) -> &'static str {
        match self {
            CaPhase::Stable => "Stable",
            CaPhase::Introducing => "Introducing",
            CaPhase::Reissuing => "Reissuing",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "Stable" => Some(CaPhase::Stable),
            "Introducing" => Some(CaPhase::Introducing),
            "Reissuing" => Some(CaPhase::Reissuing),
            _ => None,
        }
    }
}

/// The CA Secret's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaState {
    /// Where the CA rotation stands.
    pub phase: CaPhase,
    /// The CA that signs new leaves.
    pub signer: KeyPairPem,
    /// During `Introducing`: the CA that will sign next.
    pub next: Option<KeyPairPem>,
    /// During `Reissuing`: old CA certificates still trusted.
    pub retiring: Vec<String>,
    /// When the current phase began.
    pub since: OffsetDateTime,
    /// During `Reissuing`: when the operator first saw no leaf of a retiring CA.
    pub old_leaves_gone_at: Option<OffsetDateTime>,
}

/// What happened to the CA in one step, for Events and the rotation counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaEvent {
    /// A first CA (or one replacing a lost Secret).
    Issued,
    /// A next CA joined the bundles.
    RotationStarted,
    /// The next CA now signs; leaves are re-issued.
    SignerSwitched,
    /// The old CA left the bundles; the rotation is complete.
    OldCaRetired,
}

/// CA Secret key of the next CA's certificate, published before it signs.
pub const NEXT_CRT: &str = "next.crt";
/// CA Secret key of the next CA's private key.
pub const NEXT_KEY: &str = "next.key";
/// CA Secret key of the retiring CA's certificate, trusted until its leaves are gone.
pub const RETIRING_CRT: &str = "retiring.crt";
/// CA Secret annotation with the rotation phase.
pub const PHASE_ANNOTATION: &str = "sightline.dev/ca-phase";
/// CA Secret annotation with the time the phase began.
pub const SINCE_ANNOTATION: &str = "sightline.dev/ca-phase-since";
/// CA Secret annotation with the time the old CA's last leaves were replaced.
pub const GONE_ANNOTATION: &str = "sightline.dev/ca-old-leaves-gone-at";

impl CaState {
    /// Every CA certificate a consumer must trust now, signer first.
    pub fn bundle(&self) -> String {
        let mut bundle = String::new();
        let mut seen = Vec::new();
        let certs = std::iter::once(&self.signer.cert)
            .chain(self.next.as_ref().map(|next| &next.cert))
            .chain(self.retiring.iter());
        for cert in certs {
            let cert = cert.trim_end();
            if !seen.contains(&cert) {
                seen.push(cert);
                bundle.push_str(cert);
                bundle.push('\n');
            }
        }
        bundle
    }

    /// The signing CA's certificate details.
    pub fn signer_info(&self) -> Result<CertInfo, TlsError> {
        inspect(&self.signer.cert, "sightline-ca tls.crt")
    }

    /// The Secret's data and annotations.
    pub fn encode(&self) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, String>) {
        let mut data = BTreeMap::new();
        data.insert(TLS_CRT.to_owned(), self.signer.cert.clone().into_bytes());
        data.insert(TLS_KEY.to_owned(), self.signer.key.clone().into_bytes());
        data.insert(CA_CRT.to_owned(), self.bundle().into_bytes());
        if let Some(next) = &self.next {
            data.insert(NEXT_CRT.to_owned(), next.cert.clone().into_bytes());
            data.insert(NEXT_KEY.to_owned(), next.key.clone().into_bytes());
        }
        if !self.retiring.is_empty() {
            data.insert(RETIRING_CRT.to_owned(), self.retiring.concat().into_bytes());
        }
        let mut annotations = BTreeMap::new();
        annotations.insert(PHASE_ANNOTATION.to_owned(), self.phase.as_str().to_owned());
        annotations.insert(SINCE_ANNOTATION.to_owned(), rfc3339(self.since));
        if let Some(gone) = self.old_leaves_gone_at {
            annotations.insert(GONE_ANNOTATION.to_owned(), rfc3339(gone));
        }
        (data, annotations)
    }

    /// Reads the Secret back; `None` when it is missing a piece the state needs
    /// (a Secret deleted or edited by hand), so the caller recovers.
    pub fn decode(data: &BTreeMap<String, Vec<u8>>, annotations: &BTreeMap<String, String>) -> Option<Self> {
        let text = |key: &str| data.get(key).and_then(|bytes| String::from_utf8(bytes.clone()).ok());
        let signer = KeyPairPem {
            cert: text(TLS_CRT)?,
            key: text(TLS_KEY)?,
        };
        let signer_info = inspect(&signer.cert, "CA").ok()?;
        if !signer_info.is_ca || !super::material::key_matches(&signer_info, &signer.key) {
            return None;
        }
        let phase = annotations
            .get(PHASE_ANNOTATION)
            .and_then(|p| CaPhase::parse(p))
            .unwrap_or(CaPhase::Stable);
        let since = annotations
            .get(SINCE_ANNOTATION)
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
            .unwrap_or(signer_info.not_before);
        let next = match (text(NEXT_CRT), text(NEXT_KEY)) {
            (Some(cert), Some(key)) => Some(KeyPairPem { cert, key }),
            _ => None,
        };
        let retiring = text(RETIRING_CRT).map(split_pem).unwrap_or_default();
        let phase = match phase {
            CaPhase::Introducing if next.is_none() => CaPhase::Stable,
            other => other,
        };
        Some(CaState {
            phase,
            signer,
            next,
            retiring,
            since,
            old_leaves_gone_at: annotations
                .get(GONE_ANNOTATION)
                .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok()),
        })
    }
}

/// Splits a PEM bundle into one text per certificate.
pub fn split_pem(bundle: String) -> Vec<String> {
    const END: &str = "-----END CERTIFICATE-----";
    bundle
        .split_inclusive(END)
        .map(str::trim)
        .filter(|block| block.ends_with(END))
        .map(|block| format!("{block}\n"))
        .collect()
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

fn elapsed(since: OffsetDateTime, now: OffsetDateTime) -> Duration {
    Duration::try_from(now - since).unwrap_or(Duration::ZERO)
}

fn remaining(info: &CertInfo, now: OffsetDateTime) -> Duration {
    Duration::try_from(info.not_after - now).unwrap_or(Duration::ZERO)
}

/// One step of the machine. `old_leaves_remain` says whether any leaf Secret still
/// holds a certificate signed by a retiring CA; `recovered_trust` are CA
/// certificates found in leaf bundles when the CA Secret itself was lost.
pub fn step(
    state: Option<CaState>,
    old_leaves_remain: bool,
    recovered_trust: Vec<String>,
    now: OffsetDateTime,
    lifetimes: &Lifetimes,
) -> Result<(CaState, Option<CaEvent>), TlsError> {
    let Some(mut state) = state else {
        let signer = issue_ca(now, lifetimes.ca_validity)?;
        // With old CAs still in consumers' bundles, keep trusting them until the
        // leaves they signed are replaced, exactly as in a planned rotation.
        let phase = if recovered_trust.is_empty() {
            CaPhase::Stable
        } else {
            CaPhase::Reissuing
        };
        return Ok((
            CaState {
                phase,
                signer,
                next: None,
                retiring: recovered_trust,
                since: now,
                old_leaves_gone_at: None,
            },
            Some(CaEvent::Issued),
        ));
    };
    match state.phase {
        CaPhase::Stable => {
            let signer = state.signer_info()?;
            if remaining(&signer, now) > lifetimes.cert_validity {
                return Ok((state, None));
            }
            state.next = Some(issue_ca(now, lifetimes.ca_validity)?);
            state.phase = CaPhase::Introducing;
            state.since = now;
            Ok((state, Some(CaEvent::RotationStarted)))
        }
        CaPhase::Introducing => {
            if elapsed(state.since, now) < lifetimes.propagation {
                return Ok((state, None));
            }
            let Some(next) = state.next.take() else {
                state.phase = CaPhase::Stable;
                return Ok((state, None));
            };
            let old = std::mem::replace(&mut state.signer, next);
            state.retiring.push(old.cert);
            state.phase = CaPhase::Reissuing;
            state.since = now;
            state.old_leaves_gone_at = None;
            Ok((state, Some(CaEvent::SignerSwitched)))
        }
        CaPhase::Reissuing => {
            if old_leaves_remain {
                state.old_leaves_gone_at = None;
                return Ok((state, None));
            }
            let gone_at = *state.old_leaves_gone_at.get_or_insert(now);
            if elapsed(gone_at, now) < lifetimes.propagation {
                return Ok((state, None));
            }
            state.retiring.clear();
            state.phase = CaPhase::Stable;
            state.since = now;
            state.old_leaves_gone_at = None;
            Ok((state, Some(CaEvent::OldCaRetired)))
        }
    }
}

/// When the machine next needs to look, given no outside change.
pub fn next_check(state: &CaState, now: OffsetDateTime, lifetimes: &Lifetimes) -> OffsetDateTime {
    let propagation = time::Duration::try_from(lifetimes.propagation).unwrap_or(time::Duration::MINUTE);
    match state.phase {
        CaPhase::Stable => match state.signer_info() {
            Ok(info) => {
                info.not_after - time::Duration::try_from(lifetimes.cert_validity).unwrap_or(time::Duration::ZERO)
            }
            Err(_) => now,
        },
        CaPhase::Introducing => state.since + propagation,
        CaPhase::Reissuing => state.old_leaves_gone_at.unwrap_or(now) + propagation,
    }
}
