//! `External` mode: the Secrets come from the user or cert-manager; the operator
//! only checks that Hubble's clients will accept them.

use std::time::Duration;

use time::OffsetDateTime;

use super::material::{inspect, key_matches, signed_by};
use super::names::Leaf;
use super::plan::{Observed, Subjects, bundle_infos, rfc3339};
use super::{CA_CRT, TLS_CRT, TLS_KEY};
use crate::crd::CertificateStatus;

/// Why a provided Secret will not do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalProblem {
    /// The Secret's name.
    pub secret: &'static str,
    /// `Missing`, `MissingKey`, `Invalid`, `WrongNames`, `Untrusted` or `Expiring`.
    pub reason: &'static str,
    /// What is wrong, for the Event and the status.
    pub message: String,
}

/// Checks every leaf Secret; the statuses of the good ones and the problems of the rest.
pub fn check(
    observed: &Observed,
    subjects: &Subjects,
    renew_before: Duration,
    now: OffsetDateTime,
) -> (Vec<CertificateStatus>, Vec<ExternalProblem>) {
    let mut statuses = Vec::new();
    let mut problems = Vec::new();
    for leaf in Leaf::ALL {
        let secret = leaf.secret_name();
        let problem = |reason: &'static str, message: String| ExternalProblem {
            secret,
            reason,
            message: format!("Secret {secret}: {message}"),
        };
        let Some(contents) = observed.leaves.get(&leaf) else {
            problems.push(problem("Missing", "does not exist".into()));
            continue;
        };
        let missing: Vec<&str> = [TLS_CRT, TLS_KEY, CA_CRT]
            .into_iter()
            .filter(|key| !contents.data.contains_key(*key))
            .collect();
        if !missing.is_empty() {
            problems.push(problem("MissingKey", format!("has no {}", missing.join(", "))));
            continue;
        }
        let text = |key: &str| std::str::from_utf8(&contents.data[key]).unwrap_or_default().to_owned();
        let info = match inspect(&text(TLS_CRT), secret) {
            Ok(info) => info,
            Err(err) => {
                problems.push(problem("Invalid", err.to_string()));
                continue;
            }
        };
        if !key_matches(&info, &text(TLS_KEY)) {
            problems.push(problem("Invalid", "tls.key is not the key of tls.crt".into()));
            continue;
        }
        let wanted = leaf.subject_names(
            &subjects.cluster,
            &subjects.extra_dns_names,
            &subjects.extra_ip_addresses,
        );
        let absent: Vec<&String> = wanted
            .iter()
            .filter(|name| !info.subject_names.contains(name))
            .collect();
        if !absent.is_empty() {
            problems.push(problem(
                "WrongNames",
                format!(
                    "certificate names {:?} lack {:?}",
                    info.subject_names,
                    absent.iter().map(|n| n.as_str()).collect::<Vec<_>>()
                ),
            ));
            continue;
        }
        if !bundle_infos(contents).iter().any(|ca| signed_by(&info, ca)) {
            problems.push(problem(
                "Untrusted",
                "ca.crt does not hold the CA that signed tls.crt".into(),
            ));
            continue;
        }
        let renew = time::Duration::try_from(renew_before).unwrap_or(time::Duration::MAX);
        if info.not_after - now < renew {
            problems.push(problem(
                "Expiring",
                format!("expires at {}, within renewBefore", rfc3339(info.not_after)),
            ));
        }
        statuses.push(CertificateStatus {
            secret: secret.to_owned(),
            subject_names: info.subject_names,
            not_after: rfc3339(info.not_after),
        });
    }
    (statuses, problems)
}
