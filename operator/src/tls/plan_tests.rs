//! What one TLS reconcile writes for a given set of Secrets and a time.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use time::OffsetDateTime;

use super::external;
use super::material::inspect;
use super::names::{CA_SECRET, Leaf};
use super::plan::{Observed, SecretContents, Subjects, TlsPlan, plan};
use super::{CA_CRT, Lifetimes, TLS_CRT, TLS_KEY};

const DAY: Duration = Duration::from_secs(86_400);

fn lifetimes() -> Lifetimes {
    Lifetimes {
        ca_validity: DAY * 100,
        cert_validity: DAY * 30,
        renew_before: DAY * 5,
        propagation: Duration::from_secs(600),
    }
}

fn subjects() -> Subjects {
    Subjects {
        cluster: "prod.eu".into(),
        extra_dns_names: vec!["hubble.example.com".into()],
        extra_ip_addresses: vec!["10.0.0.7".into()],
    }
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn apply(observed: &mut Observed, plan: &TlsPlan) {
    for write in &plan.writes {
        match Leaf::ALL.into_iter().find(|leaf| leaf.secret_name() == write.name) {
            Some(leaf) => {
                observed.leaves.insert(leaf, write.contents.clone());
            }
            None => observed.ca = Some(write.contents.clone()),
        }
    }
}

fn installed() -> Observed {
    let mut observed = Observed::default();
    let first = plan(&observed, &subjects(), &lifetimes(), t0()).unwrap();
    apply(&mut observed, &first);
    observed
}

fn text(contents: &SecretContents, key: &str) -> String {
    String::from_utf8(contents.data[key].clone()).unwrap()
}

fn written(plan: &TlsPlan) -> Vec<&str> {
    plan.writes.iter().map(|write| write.name).collect()
}

#[test]
fn first_install_issues_hubbles_secrets_with_hubbles_names() {
    let plan = plan(&Observed::default(), &subjects(), &lifetimes(), t0()).unwrap();
    assert_eq!(
        written(&plan),
        [
            CA_SECRET,
            "hubble-server-certs",
            "hubble-relay-client-certs",
            "hubble-relay-server-certs",
            "hubble-metrics-server-certs",
            "sightline-cli-certs"
        ]
    );
    let agent = &plan.writes[1].contents;
    let info = inspect(&text(agent, TLS_CRT), "agent").unwrap();
    assert_eq!(
        info.subject_names,
        ["*.prod-eu.hubble-grpc.cilium.io", "hubble.example.com", "10.0.0.7"]
    );
    assert_eq!(info.not_after - t0(), time::Duration::days(30));
    let key = rcgen::KeyPair::from_pem(&text(agent, TLS_KEY)).unwrap();
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    let relay = inspect(&text(&plan.writes[2].contents, TLS_CRT), "relay").unwrap();
    assert_eq!(relay.subject_names, ["*.hubble-relay.cilium.io"]);
    let metrics = inspect(&text(&plan.writes[4].contents, TLS_CRT), "metrics").unwrap();
    assert_eq!(metrics.subject_names, ["prod-eu.hubble-metrics.cilium.io"]);
    let ca = text(&plan.writes[0].contents, TLS_CRT);
    assert_eq!(text(agent, CA_CRT).trim(), ca.trim(), "ca.crt holds the one CA");
    assert_eq!(plan.events.len(), 6, "{:?}", plan.events);
    assert_eq!(plan.certificates.len(), 6);
    assert_eq!(plan.next_check, t0() + time::Duration::days(25));
}

#[test]
fn a_second_reconcile_changes_nothing() {
    let observed = installed();
    let again = plan(&observed, &subjects(), &lifetimes(), t0() + time::Duration::hours(1)).unwrap();
    assert!(again.writes.is_empty(), "{:?}", written(&again));
    assert!(again.events.is_empty());
}

#[test]
fn leaves_are_renewed_once_less_than_renew_before_remains() {
    let observed = installed();
    let before = plan(&observed, &subjects(), &lifetimes(), t0() + time::Duration::days(24)).unwrap();
    assert!(before.writes.is_empty());
    let after = plan(
        &observed,
        &subjects(),
        &lifetimes(),
        t0() + time::Duration::days(25) + time::Duration::SECOND,
    )
    .unwrap();
    assert_eq!(after.writes.len(), 5, "every leaf, not the CA: {:?}", written(&after));
    assert!(after.events.iter().all(|event| event.reason == "CertificateRenewed"));
}

#[test]
fn a_secret_deleted_or_edited_by_hand_is_restored() {
    let mut observed = installed();
    observed.leaves.remove(&Leaf::RelayClient);
    let other = installed();
    // Someone pasted the CLI key into the agent Secret.
    let foreign_key = other.leaves[&Leaf::Cli].data[TLS_KEY].clone();
    observed
        .leaves
        .get_mut(&Leaf::AgentServer)
        .unwrap()
        .data
        .insert(TLS_KEY.into(), foreign_key);
    let repair = plan(&observed, &subjects(), &lifetimes(), t0()).unwrap();
    assert_eq!(written(&repair), ["hubble-server-certs", "hubble-relay-client-certs"]);
    let messages: Vec<&str> = repair.events.iter().map(|event| event.message.as_str()).collect();
    assert!(messages[0].contains("(Invalid)"), "{messages:?}");
    assert!(messages[1].contains("(Missing)"), "{messages:?}");
}

#[test]
fn changed_extra_names_reissue_only_the_agent_certificate() {
    let observed = installed();
    let mut changed = subjects();
    changed.extra_dns_names.push("hubble2.example.com".into());
    let plan = plan(&observed, &changed, &lifetimes(), t0()).unwrap();
    assert_eq!(written(&plan), ["hubble-server-certs"]);
}

#[test]
fn a_lost_ca_is_replaced_while_the_old_one_stays_trusted() {
    let mut observed = installed();
    let old_ca = text(observed.ca.as_ref().unwrap(), TLS_CRT);
    observed.ca = None;
    let repair = plan(&observed, &subjects(), &lifetimes(), t0()).unwrap();
    assert_eq!(repair.events[0].reason, "CaRestored");
    assert_eq!(repair.writes.len(), 6, "new CA and every leaf from it");
    let bundle = text(&repair.writes[1].contents, CA_CRT);
    assert!(
        bundle.contains(old_ca.trim()),
        "old CA still trusted while old leaves are in pods"
    );
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2);
}

#[test]
fn external_mode_names_what_is_wrong_with_provided_secrets() {
    let mut observed = installed();
    observed.leaves.remove(&Leaf::Cli);
    observed.leaves.get_mut(&Leaf::RelayServer).unwrap().data.remove(CA_CRT);
    let other_cluster = Subjects {
        cluster: "staging".into(),
        ..subjects()
    };
    let (ok, problems) = external::check(&observed, &other_cluster, DAY * 5, t0());
    let found: Vec<(&str, &str)> = problems.iter().map(|p| (p.secret, p.reason)).collect();
    assert_eq!(
        found,
        [
            ("hubble-server-certs", "WrongNames"),
            ("hubble-relay-server-certs", "MissingKey"),
            ("hubble-metrics-server-certs", "WrongNames"),
            ("sightline-cli-certs", "Missing"),
        ]
    );
    assert!(
        problems[0].message.contains("*.staging.hubble-grpc.cilium.io"),
        "{}",
        problems[0].message
    );
    assert_eq!(ok.len(), 1, "the relay client certificate is fine");
    let (_, late) = external::check(&installed(), &subjects(), DAY * 5, t0() + time::Duration::days(26));
    assert!(
        late.iter().all(|p| p.reason == "Expiring") && late.len() == 5,
        "{late:?}"
    );
}
