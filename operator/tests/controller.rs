//! The reconcile against a mocked API server: what a user sees in the cluster
//! after first install, a spec update, a Secret deleted by hand, a conflicting
//! write, an invalid or an unused resource.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sightline_operator::controller::metrics::Metrics;
use sightline_operator::controller::reconcile::{error_policy, reconcile};
use sightline_operator::controller::{Context, Settings, context};
use sightline_operator::crd::SightlineConfig;
use support::fake_api::{FakeApi, merge};
use support::rbac::assert_documented_rbac_grants;

const NS: &str = "sightline";
const CONFIG: &str = "apis/sightline.dev/v1alpha1/sightlineconfigs/default";

fn secret_path(name: &str) -> String {
    format!("api/v1/namespaces/{NS}/secrets/{name}")
}

fn configmap_path(name: &str) -> String {
    format!("api/v1/namespaces/{NS}/configmaps/{name}")
}

const LEAVES: [&str; 5] = [
    "hubble-server-certs",
    "hubble-relay-client-certs",
    "hubble-relay-server-certs",
    "hubble-metrics-server-certs",
    "sightline-cli-certs",
];

struct Cluster {
    api: FakeApi,
    ctx: Arc<Context>,
    metrics: Arc<Metrics>,
}

fn cluster(spec: Value) -> Cluster {
    let api = FakeApi::default();
    api.insert(
        "api/v1/nodes/cpu-1",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cpu-1", "labels": {"pool": "cpu"}}}),
    );
    api.insert(
        "api/v1/nodes/gpu-1",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "gpu-1", "labels": {"pool": "gpu"}}}),
    );
    // Two live agents, and the Lease a deleted node left behind, which is not counted.
    let renewed = k8s_openapi::jiff::Timestamp::now().to_string();
    for (node, generation) in [("cpu-1", "1"), ("gpu-1", "0"), ("deleted-1", "1")] {
        api.insert(
            &format!("apis/coordination.k8s.io/v1/namespaces/{NS}/leases/sightline-agent-{node}"),
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": format!("sightline-agent-{node}"), "namespace": NS,
                                "labels": {"sightline.dev/component": "agent"},
                                "annotations": {"sightline.dev/config-generation": generation}},
                   "spec": {"holderIdentity": node, "renewTime": renewed, "leaseDurationSeconds": 3600}}),
        );
    }
    // Relay pods: one running, one being deleted (a rollout's old replica), and a
    // pod of another component. Their Leases, and one of a pod that is gone.
    for (pod, component, deleting) in [
        ("relay-new", "relay", false),
        ("relay-old", "relay", true),
        ("ui-1", "ui", false),
    ] {
        let mut metadata = json!({"name": pod, "namespace": NS, "labels": {"app.kubernetes.io/component": component}});
        if deleting {
            metadata["deletionTimestamp"] = json!(renewed);
        }
        api.insert(
            &format!("api/v1/namespaces/{NS}/pods/{pod}"),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "status": {"phase": "Running"}}),
        );
    }
    for (pod, generation) in [
        ("relay-new", "1"),
        ("relay-old", "0"),
        ("relay-gone", "0"),
        ("ui-1", "0"),
    ] {
        api.insert(
            &format!("apis/coordination.k8s.io/v1/namespaces/{NS}/leases/sightline-relay-{pod}"),
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": format!("sightline-relay-{pod}"), "namespace": NS,
                                "labels": {"sightline.dev/component": "relay"},
                                "annotations": {"sightline.dev/config-generation": generation}},
                   "spec": {"holderIdentity": pod, "renewTime": renewed, "leaseDurationSeconds": 3600}}),
        );
    }
    api.insert(
        &format!("apis/apps/v1/namespaces/{NS}/daemonsets/sightline-agent"),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "sightline-agent", "namespace": NS},
               "spec": {"selector": {}, "template": {"metadata": {}}}}),
    );
    api.insert(
        CONFIG,
        json!({"apiVersion": "sightline.dev/v1alpha1", "kind": "SightlineConfig",
               "metadata": {"name": "default", "generation": 1}, "spec": spec}),
    );
    let metrics = Arc::new(Metrics::default());
    let ctx = context(
        api.client(),
        Settings {
            namespace: NS.to_owned(),
            agent_daemonset: "sightline-agent".to_owned(),
            relay_pod_selector: "app.kubernetes.io/component=relay".to_owned(),
            propagation: Duration::from_secs(120),
            resync: Duration::from_secs(300),
        },
        metrics.clone(),
        "test",
    );
    Cluster { api, ctx, metrics }
}

impl Cluster {
    fn resource(&self, path: &str) -> Arc<SightlineConfig> {
        Arc::new(serde_json::from_value(self.api.get(path).unwrap()).unwrap())
    }

    async fn reconcile(&self) -> Result<(), sightline_operator::controller::Error> {
        reconcile(self.resource(CONFIG), self.ctx.clone()).await.map(|_| ())
    }

    /// `kubectl apply` of a changed spec: the API server bumps the generation.
    fn update_spec(&self, patch: Value) {
        let mut object = self.api.get(CONFIG).unwrap();
        merge(&mut object["spec"], &patch);
        let generation = object["metadata"]["generation"].as_i64().unwrap() + 1;
        object["metadata"]["generation"] = generation.into();
        self.api.insert(CONFIG, object);
    }

    fn condition(&self, type_: &str) -> Value {
        let object = self.api.get(CONFIG).unwrap();
        object["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn events(&self) -> Vec<(String, String)> {
        self.api
            .list("apis/events.k8s.io/v1/namespaces/default/events/")
            .iter()
            .map(|e| {
                (
                    e["reason"].as_str().unwrap().to_owned(),
                    e["note"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    fn secret_data(&self, name: &str, key: &str) -> String {
        let secret = self.api.get(&secret_path(name)).unwrap();
        let encoded = secret["data"][key].as_str().unwrap();
        let bytes: k8s_openapi::ByteString = serde_json::from_value(json!(encoded)).unwrap();
        String::from_utf8(bytes.0).unwrap()
    }

    fn configmap(&self, name: &str, key: &str) -> String {
        self.api.get(&configmap_path(name)).unwrap()["data"][key]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn spec_with_gpu_override() -> Value {
    json!({
        "clusterName": "prod",
        "agent": {"monitorAggregation": "medium", "metrics": [{"name": "flow"}]},
        "nodeOverrides": [{"nodeSelector": {"pool": "gpu"}, "agent": {"monitorAggregation": "maximum"}}],
        "tls": {"extraDnsNames": ["hubble.example.com"]}
    })
}

#[tokio::test]
async fn first_install_writes_configuration_certificates_status_and_events() {
    let cluster = cluster(spec_with_gpu_override());
    cluster.reconcile().await.unwrap();

    for name in LEAVES {
        let secret = cluster
            .api
            .get(&secret_path(name))
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(secret["type"], "kubernetes.io/tls");
        assert_eq!(secret["metadata"]["ownerReferences"][0]["kind"], "SightlineConfig");
        assert!(cluster.secret_data(name, "tls.key").contains("PRIVATE KEY"));
        assert_eq!(
            cluster.secret_data(name, "ca.crt"),
            cluster.secret_data("sightline-ca", "ca.crt")
        );
    }
    let config = cluster.configmap("sightline-agent-config", "config.yaml");
    assert!(config.contains("monitor-aggregation: medium"), "{config}");
    assert!(config.contains("cluster-name: prod"), "{config}");
    let profiles = cluster.configmap("sightline-agent-config", "node-profiles.yaml");
    assert!(
        profiles.contains("gpu-1: profile-") && !profiles.contains("cpu-1"),
        "{profiles}"
    );
    let relay = cluster.configmap("sightline-relay-config", "config.yaml");
    assert!(relay.contains("sort-buffer-len-max: 100"), "{relay}");

    assert_eq!(cluster.condition("Ready")["status"], "True");
    let applied = cluster.condition("ConfigApplied");
    assert_eq!(applied["status"], "False");
    // The terminating and the deleted relay pods' Leases, and the UI's, are not counted.
    assert_eq!(applied["message"], "agents 1/2, relays 1/1 on generation 1");
    assert_eq!(cluster.condition("CertificatesReady")["status"], "True");
    let status = cluster.api.get(CONFIG).unwrap()["status"].clone();
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        (&status["relaysCurrent"], &status["relaysTotal"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(status["certificates"].as_array().unwrap().len(), 6);
    assert_eq!(status["certificates"][1]["secret"], "hubble-server-certs");
    assert_eq!(
        status["certificates"][1]["subjectNames"],
        json!(["*.prod.hubble-grpc.cilium.io", "hubble.example.com"])
    );

    let events = cluster.events();
    assert_eq!(
        events
            .iter()
            .filter(|(reason, _)| reason == "CertificateIssued")
            .count(),
        5,
        "{events:?}"
    );
    assert!(events.iter().any(|(reason, _)| reason == "CaIssued"));
    let text = cluster.metrics.encode();
    assert!(
        text.contains("sightline_tls_certificate_not_after_seconds{secret=\"hubble-server-certs\"}"),
        "{text}"
    );
    assert!(text.contains("sightline_operator_reconcile_runs_total 1"), "{text}");
}

#[tokio::test]
async fn a_spec_update_rewrites_configuration_and_leaves_certificates_alone() {
    let cluster = cluster(spec_with_gpu_override());
    cluster.reconcile().await.unwrap();
    let versions = |c: &Cluster| -> Vec<Value> {
        LEAVES
            .iter()
            .map(|name| c.api.get(&secret_path(name)).unwrap()["metadata"]["resourceVersion"].clone())
            .collect()
    };
    let before = versions(&cluster);
    cluster
        .update_spec(json!({"agent": {"monitorAggregation": "low", "metrics": [{"name": "drop"}, {"name": "tcp"}]}}));
    cluster.reconcile().await.unwrap();
    assert!(
        cluster
            .configmap("sightline-agent-config", "config.yaml")
            .contains("monitor-aggregation: low")
    );
    assert!(
        cluster
            .configmap("sightline-agent-config", "metrics.yaml")
            .contains("name: tcp")
    );
    assert_eq!(cluster.configmap("sightline-agent-config", "generation"), "2");
    assert_eq!(versions(&cluster), before, "no certificate rewritten");
    assert_eq!(
        cluster.condition("ConfigApplied")["message"],
        "agents 0/2, relays 0/1 on generation 2"
    );

    // A setting only a restart applies is named, and nothing restarts without consent.
    cluster.update_spec(json!({"agent": {"eventBufferCapacity": 65535}}));
    cluster.reconcile().await.unwrap();
    let applied = cluster.condition("ConfigApplied");
    assert_eq!(applied["reason"], "RestartRequired");
    assert!(
        applied["message"]
            .as_str()
            .unwrap()
            .contains("spec.agent.eventBufferCapacity"),
        "{applied}"
    );
    let daemonset = format!("apis/apps/v1/namespaces/{NS}/daemonsets/sightline-agent");
    assert!(cluster.api.get(&daemonset).unwrap()["spec"]["template"]["metadata"]["annotations"].is_null());

    cluster.update_spec(json!({"agent": {"restartPolicy": "Rolling"}}));
    cluster.reconcile().await.unwrap();
    let annotations = cluster.api.get(&daemonset).unwrap()["spec"]["template"]["metadata"]["annotations"].clone();
    assert!(
        annotations["sightline.dev/restart-checksum"].is_string(),
        "{annotations}"
    );
    assert_ne!(cluster.condition("ConfigApplied")["reason"], "RestartRequired");
    assert!(cluster.events().iter().any(|(reason, _)| reason == "RollingRestart"));
    // Including the DaemonSet patch, every call is one the documented roles grant.
    assert_documented_rbac_grants(&cluster.api.requests(), NS);
}

#[tokio::test]
async fn a_secret_deleted_by_hand_is_restored_from_the_same_ca() {
    let cluster = cluster(spec_with_gpu_override());
    cluster.reconcile().await.unwrap();
    let ca = cluster.secret_data("sightline-ca", "tls.crt");
    cluster.api.remove(&secret_path("hubble-server-certs")).unwrap();
    cluster.reconcile().await.unwrap();
    assert_eq!(cluster.secret_data("hubble-server-certs", "ca.crt").trim(), ca.trim());
    // The second issuance within minutes of the first joins its Event series.
    let issued: Vec<Value> = cluster
        .api
        .list("apis/events.k8s.io/v1/namespaces/default/events/")
        .into_iter()
        .filter(|e| e["reason"] == "CertificateIssued" && e["related"]["name"] == "hubble-server-certs")
        .collect();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["series"]["count"], 2, "{}", issued[0]);
    // Including the Event series' patch, every call is one the documented roles grant.
    assert_documented_rbac_grants(&cluster.api.requests(), NS);
}

#[tokio::test]
async fn a_secret_created_as_opaque_keeps_its_immutable_type() {
    let cluster = cluster(spec_with_gpu_override());
    cluster.api.insert(
        &secret_path("hubble-relay-server-certs"),
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "hubble-relay-server-certs", "namespace": NS}, "data": {}}),
    );
    cluster.reconcile().await.unwrap();
    let secret = cluster.api.get(&secret_path("hubble-relay-server-certs")).unwrap();
    assert_eq!(secret["type"], "Opaque");
    assert!(
        cluster
            .secret_data("hubble-relay-server-certs", "tls.crt")
            .contains("BEGIN CERTIFICATE")
    );
}

#[tokio::test]
async fn a_conflicting_write_fails_the_reconcile_and_the_retry_repairs() {
    let cluster = cluster(spec_with_gpu_override());
    cluster.reconcile().await.unwrap();
    // Someone blanks the relay's key while another writer updates the Secret.
    let path = secret_path("hubble-relay-client-certs");
    let mut secret = cluster.api.get(&path).unwrap();
    secret["data"]["tls.key"] = json!("");
    cluster.api.insert(&path, secret);
    cluster.api.conflict_once("PUT", &format!("/{path}"));

    let error = cluster.reconcile().await.unwrap_err();
    assert_eq!(error.metric_label(), "conflict", "{error}");
    let action = error_policy(cluster.resource(CONFIG), &error, cluster.ctx.clone());
    assert!(format!("{action:?}").contains("requeue_after: Some"), "{action:?}");
    assert!(
        cluster
            .metrics
            .encode()
            .contains("sightline_operator_reconcile_failures_total{error=\"conflict\"} 1")
    );
    cluster.reconcile().await.unwrap();
    assert!(
        cluster
            .secret_data("hubble-relay-client-certs", "tls.key")
            .contains("PRIVATE KEY")
    );
}

#[tokio::test]
async fn an_invalid_spec_is_named_in_ready_and_the_last_good_configuration_stays() {
    let cluster = cluster(spec_with_gpu_override());
    cluster.reconcile().await.unwrap();
    let good = cluster.configmap("sightline-agent-config", "config.yaml");
    cluster.update_spec(json!({"agent": {"eventBufferCapacity": 4096, "monitorAggregation": "low"}}));
    cluster.reconcile().await.unwrap();
    let ready = cluster.condition("Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "InvalidSpec");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.agent.eventBufferCapacity: 4096"),
        "{ready}"
    );
    assert_eq!(cluster.configmap("sightline-agent-config", "config.yaml"), good);
    assert_eq!(cluster.configmap("sightline-agent-config", "generation"), "1");
    assert_eq!(
        cluster.condition("CertificatesReady")["status"],
        "True",
        "kept from the good generation"
    );
    assert!(cluster.events().iter().any(|(reason, _)| reason == "InvalidSpec"));

    // Certificates are still looked after while the spec waits for a fix.
    cluster.api.remove(&secret_path("hubble-metrics-server-certs")).unwrap();
    cluster.reconcile().await.unwrap();
    assert!(cluster.api.get(&secret_path("hubble-metrics-server-certs")).is_some());
    assert_eq!(cluster.condition("Ready")["reason"], "InvalidSpec");
}

#[tokio::test]
async fn only_the_resource_named_default_is_in_force() {
    let cluster = cluster(spec_with_gpu_override());
    let other = "apis/sightline.dev/v1alpha1/sightlineconfigs/staging";
    cluster.api.insert(
        other,
        json!({"apiVersion": "sightline.dev/v1alpha1", "kind": "SightlineConfig",
               "metadata": {"name": "staging", "generation": 1}, "spec": {}}),
    );
    reconcile(cluster.resource(other), cluster.ctx.clone()).await.unwrap();
    let ready = &cluster.api.get(other).unwrap()["status"]["conditions"][0];
    assert_eq!(ready["type"], "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "NotInUse");
    assert!(cluster.api.list(&format!("api/v1/namespaces/{NS}/secrets/")).is_empty());
}

#[tokio::test]
async fn external_mode_reports_missing_secrets_instead_of_issuing() {
    let cluster = cluster(json!({"tls": {"mode": "External"}}));
    cluster.reconcile().await.unwrap();
    let certificates = cluster.condition("CertificatesReady");
    assert_eq!(certificates["status"], "False");
    assert_eq!(certificates["reason"], "Missing");
    assert!(
        certificates["message"]
            .as_str()
            .unwrap()
            .contains("Secret hubble-server-certs: does not exist"),
        "{certificates}"
    );
    assert_eq!(cluster.condition("Ready")["status"], "False");
    assert!(cluster.api.list(&format!("api/v1/namespaces/{NS}/secrets/")).is_empty());
}

/// A leaf with less than `renewBefore` left is re-issued at the next reconcile,
/// with an Event per Secret and `sightline_tls_rotations_total{kind="leaf"}`
/// counting each (here `renewBefore` is one second short of `certValidity`).
#[tokio::test]
async fn renewals_are_counted_and_announced() {
    let cluster = cluster(json!({"tls": {"certValidity": "2h", "renewBefore": "7199s"}}));
    cluster.reconcile().await.unwrap();
    let first = cluster.secret_data("hubble-server-certs", "tls.crt");
    assert!(!cluster.metrics.encode().contains("sightline_tls_rotations_total"));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    cluster.reconcile().await.unwrap();
    assert_ne!(cluster.secret_data("hubble-server-certs", "tls.crt"), first);
    let renewed: Vec<String> = cluster
        .api
        .list("apis/events.k8s.io/v1/namespaces/default/events/")
        .into_iter()
        .filter(|e| e["reason"] == "CertificateRenewed")
        .map(|e| e["related"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(renewed.len(), LEAVES.len(), "{renewed:?}");
    let text = cluster.metrics.encode();
    assert!(
        text.contains(&format!(
            "sightline_tls_rotations_total{{kind=\"leaf\"}} {}",
            LEAVES.len()
        )),
        "{text}"
    );
    assert!(!text.contains("kind=\"ca\""), "{text}");
}
