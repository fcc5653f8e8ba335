//! The committed CRD is what the types generate, and its schema says what users
//! will meet at `kubectl apply`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use kube::CustomResourceExt;
use serde_json::Value;
use sightline_operator::crd::SightlineConfig;
use sightline_operator::crdgen::{CRD_PATH, crd_yaml};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(CRD_PATH)
}

#[test]
fn committed_crd_matches_the_types() {
    let generated = crd_yaml().unwrap();
    let path = committed_path();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run `UPDATE_CRDS=1 cargo test -p sightline-operator --test crd`",
        path.display()
    );
}

/// `kubectl` and Helm read YAML 1.1, where a plain `off`, `no` or `on` is a boolean:
/// the committed CRD must hold the same strings for them as for the generator, or the
/// `dropEvents` enum would offer `false` instead of `off`.
#[test]
fn committed_crd_means_the_same_to_yaml_1_1_readers() {
    let committed = std::fs::read_to_string(committed_path()).unwrap();
    let parsed: Value = serde_yaml_ng::from_str(&committed).unwrap();
    assert_eq!(parsed, serde_json::to_value(SightlineConfig::crd()).unwrap());
    let drop_events = &parsed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["agent"]
        ["properties"]["dropEvents"]["enum"];
    assert!(
        drop_events.as_array().unwrap().iter().any(|v| v == "off"),
        "{drop_events}"
    );
    let ambiguous: Vec<&str> = committed
        .lines()
        .filter(|line| {
            sightline_operator::crdgen::YAML_1_1_BOOLEANS
                .iter()
                .any(|word| line.trim() == format!("- {word}") || line.ends_with(&format!(": {word}")))
        })
        .collect();
    assert!(ambiguous.is_empty(), "plain YAML 1.1 booleans: {ambiguous:?}");
}

fn spec_schema() -> Value {
    let crd = serde_json::to_value(SightlineConfig::crd()).unwrap();
    assert_eq!(crd["spec"]["scope"], "Cluster");
    assert_eq!(crd["spec"]["group"], "sightline.dev");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object(), "status subresource");
    version["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

#[test]
fn schema_carries_enums_patterns_defaults_and_cel_rules() {
    let spec = spec_schema();
    let agent = &spec["properties"]["agent"]["properties"];
    assert_eq!(
        agent["monitorAggregation"]["enum"],
        serde_json::json!(["none", "low", "medium", "maximum"])
    );
    assert_eq!(agent["monitorAggregation"]["default"], "medium");
    assert!(agent["monitorAggregationInterval"]["pattern"].is_string());
    let handler = &agent["metrics"]["items"]["properties"]["name"]["enum"];
    assert!(handler.as_array().unwrap().iter().any(|h| h == "httpV2"), "{handler}");
    let tls = &spec["properties"]["tls"];
    assert_eq!(
        tls["properties"]["mode"]["enum"],
        serde_json::json!(["Auto", "External"])
    );
    let rules = tls["x-kubernetes-validations"].to_string();
    assert!(
        rules.contains("duration(self.renewBefore) < duration(self.certValidity)"),
        "{rules}"
    );
    assert_eq!(tls["properties"]["certValidity"]["default"], "8760h");
    let filter = &agent["metrics"]["items"]["properties"]["includeFilters"]["items"]["properties"];
    assert!(filter["sourcePod"].is_object(), "{filter}");
    assert!(filter["source_pod"].is_null(), "proto3 JSON names only");
    let reasons = filter["dropReasonDesc"]["items"]["enum"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r == "POLICY_DENIED"));
    assert_eq!(filter["tcpFlags"]["items"]["properties"]["SYN"]["type"], "boolean");
}

#[test]
fn every_field_is_documented_for_kubectl_explain() {
    fn walk(path: &str, schema: &Value, undocumented: &mut Vec<String>) {
        if let Some(properties) = schema["properties"].as_object() {
            for (name, child) in properties {
                let child_path = format!("{path}.{name}");
                if child["description"].as_str().is_none_or(str::is_empty) {
                    undocumented.push(child_path.clone());
                }
                walk(&child_path, child, undocumented);
            }
        }
        if schema["items"].is_object() {
            walk(&format!("{path}[]"), &schema["items"], undocumented);
        }
    }
    let mut undocumented = Vec::new();
    walk("spec", &spec_schema(), &mut undocumented);
    assert!(
        undocumented.is_empty(),
        "fields without a description: {undocumented:?}"
    );
}

/// The CEL rules the API server evaluates at `kubectl apply`, run here with kube's
/// CEL evaluator on the schema the CRD carries.
#[test]
fn cel_rules_reject_renewal_windows_that_cannot_work() {
    use sightline_operator::crd::TlsSettings;
    let tls = |ca: &str, cert: &str, renew: &str| serde_json::json!({"mode": "Auto", "caValidity": ca, "certValidity": cert, "renewBefore": renew});
    assert!(TlsSettings::validate_cel(&tls("26280h", "8760h", "720h"), None).is_ok());
    let error = TlsSettings::validate_cel(&tls("26280h", "8760h", "8760h"), None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("renewBefore must be shorter than certValidity"),
        "{error}"
    );
    let error = TlsSettings::validate_cel(&tls("24h", "1h30m", "2h"), None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("renewBefore must be shorter than certValidity"),
        "{error}"
    );
    let error = TlsSettings::validate_cel(&tls("720h", "8760h", "1h"), None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("certValidity must not exceed caValidity"), "{error}");
}
