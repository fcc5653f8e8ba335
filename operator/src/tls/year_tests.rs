//! A simulated year of short-lived certificates: every hour the operator plans and
//! writes; pods see Secrets either at once or up to two hours late (less than the
//! propagation delay). At no hour may any pod present a certificate that is expired
//! or that another pod's bundle does not trust.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;

use super::material::{CertInfo, inspect, inspect_bundle, signed_by};
use super::names::Leaf;
use super::plan::{Observed, Subjects, plan};
use super::rotation::CaEvent;
use super::{CA_CRT, Lifetimes, TLS_CRT};

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Default)]
struct Parsed(HashMap<String, Vec<CertInfo>>);

impl Parsed {
    fn get(&mut self, pem: &[u8]) -> &[CertInfo] {
        let pem = String::from_utf8(pem.to_vec()).unwrap();
        self.0
            .entry(pem.clone())
            .or_insert_with(|| inspect_bundle(&pem, "simulated").unwrap())
    }
}

/// Every (presenter, verifier) pair across the fresh and the stale view.
fn assert_all_trusted(views: &[&Observed], now: OffsetDateTime, parsed: &mut Parsed, hour: usize) {
    for presenter in views {
        for (leaf, contents) in &presenter.leaves {
            let cert = parsed.get(&contents.data[TLS_CRT])[0].clone();
            assert!(
                cert.not_before <= now && now < cert.not_after,
                "hour {hour}: {leaf:?} presented outside its validity"
            );
            for verifier in views {
                for (other, other_contents) in &verifier.leaves {
                    let bundle = parsed.get(&other_contents.data[CA_CRT]).to_vec();
                    assert!(
                        bundle.iter().any(|ca| signed_by(&cert, ca) && now < ca.not_after),
                        "hour {hour}: {other:?}'s bundle does not trust {leaf:?}'s certificate"
                    );
                }
            }
        }
    }
}

#[test]
fn a_year_of_rotations_never_leaves_a_certificate_untrusted() {
    let lifetimes = Lifetimes {
        ca_validity: HOUR * 24 * 20,
        cert_validity: HOUR * 24 * 5,
        renew_before: HOUR * 24,
        propagation: HOUR * 3,
    };
    let subjects = Subjects {
        cluster: "default".into(),
        ..Subjects::default()
    };
    let start = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let mut history: Vec<Observed> = Vec::new();
    let mut current = Observed::default();
    let mut parsed = Parsed::default();
    let mut completed_rotations = 0;
    let mut renewals = 0;
    let mut cas_seen = Vec::new();
    for hour in 0..24 * 365 {
        let now = start + time::Duration::hours(hour as i64);
        let step = plan(&current, &subjects, &lifetimes, now).unwrap();
        for write in &step.writes {
            match Leaf::ALL.into_iter().find(|leaf| leaf.secret_name() == write.name) {
                Some(leaf) => {
                    current.leaves.insert(leaf, write.contents.clone());
                }
                None => current.ca = Some(write.contents.clone()),
            }
        }
        if step.ca_event == Some(CaEvent::OldCaRetired) {
            completed_rotations += 1;
        }
        renewals += step.events.iter().filter(|e| e.reason == "CertificateRenewed").count();
        let signer = inspect(
            std::str::from_utf8(&current.ca.as_ref().unwrap().data[TLS_CRT]).unwrap(),
            "ca",
        )
        .unwrap();
        if !cas_seen.contains(&signer.subject_key_id) {
            cas_seen.push(signer.subject_key_id.clone());
        }
        history.push(current.clone());
        let stale = &history[history.len().saturating_sub(3)];
        assert_all_trusted(&[&current, stale], now, &mut parsed, hour);
    }
    // A 20-day CA rotates when 5 days remain: every 15 days, ~24 times a year.
    assert!(
        completed_rotations >= 20,
        "only {completed_rotations} CA rotations completed"
    );
    assert!(cas_seen.len() > completed_rotations, "{} CAs", cas_seen.len());
    // Five leaves renewed every ~4 days, or re-issued at each rotation.
    assert!(renewals >= 5 * 80, "only {renewals} renewals");
}
