//! The Helm chart as Helm and Kubernetes see it: lint, rendering with every CI values file,
//! Kubernetes' own schemas for the oldest and newest supported version, the values schema's
//! rejections, the `fail`ed combinations, and what each TLS, metrics and export setting
//! renders.

mod chart_support;

use std::collections::BTreeSet;

use chart_support::*;

const CUSTOM_KINDS: [&str; 3] = ["SightlineConfig", "Certificate", "ServiceMonitor"];

#[test]
fn chart_version_and_app_version_are_the_workspace_version() {
    let chart: serde_json::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml"))
            .expect("Chart.yaml is YAML");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart["kubeVersion"], ">=1.28.0-0");
}

#[test]
fn helm_lint_strict_passes_with_defaults_and_every_ci_values_file() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("UTF-8");
    let mut runs = vec![vec!["lint", "--strict", chart]];
    let files = ci_values_files();
    for file in &files {
        runs.push(vec!["lint", "--strict", chart, "-f", file.to_str().expect("UTF-8")]);
    }
    for args in runs {
        let output = helm(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("0 chart(s) failed"),
            "helm {args:?}:\n{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"),
            "helm {args:?}:\n{stdout}"
        );
    }
}

/// The oldest version is the chart's kubeVersion floor; the newest is the newest schema set
/// kubernetes-validate ships (its own version).
fn supported_kubernetes_versions() -> [String; 2] {
    let output = run("kubernetes-validate", &["--version"]);
    let newest = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        newest.starts_with("1."),
        "kubernetes-validate --version printed {newest:?}"
    );
    ["1.28.0".to_owned(), newest]
}

#[test]
fn every_rendering_passes_kubernetes_validate_strict_for_oldest_and_newest_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = vec![];
    let mut renderings = vec![("defaults".to_owned(), render(&[]))];
    for values in ci_values_files() {
        let label = values.file_name().expect("name").to_string_lossy().into_owned();
        renderings.push((label, render_file(&values)));
    }
    let mut builtin_objects = 0;
    for (label, manifests) in &renderings {
        let path = dir.path().join(label);
        std::fs::write(&path, &manifests.text).expect("write rendering");
        files.push(path.to_str().expect("UTF-8").to_owned());
        builtin_objects += manifests
            .objects
            .iter()
            .filter(|o| !CUSTOM_KINDS.contains(&o["kind"].as_str().unwrap_or_default()))
            .count();
    }
    for version in supported_kubernetes_versions() {
        let mut args = vec!["--strict", "-k", version.as_str()];
        args.extend(files.iter().map(String::as_str));
        let output = run("kubernetes-validate", &args);
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "kubernetes-validate {version}:\n{report}");
        let passed = report.lines().filter(|l| l.contains(" passed for resource ")).count();
        assert_eq!(
            passed, builtin_objects,
            "every built-in object checked against {version}:\n{report}"
        );
        // Custom resources have no schema there; they are checked field by field below.
        for line in report
            .lines()
            .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR"))
        {
            assert!(
                CUSTOM_KINDS
                    .iter()
                    .any(|k| line.contains(&format!("schema for kind {k} "))),
                "unexpected finding for {version}: {line}"
            );
        }
    }
}

#[test]
fn the_values_schema_rejects_wrong_types_and_unknown_keys_naming_the_key() {
    let cases: [(&[&str], &[&str]); 8] = [
        (
            &["--set", "agent.listenPort=abc"],
            &["/agent/listenPort", "want integer"],
        ),
        (&["--set", "relay.bogus=1"], &["/relay", "'bogus' not allowed"]),
        (&["--set", "hubble.enabled=true"], &["'hubble' not allowed"]),
        (&["--set", "tls.auto.method=helm"], &["/tls/auto/method"]),
        (&["--set", "operator.replicas=3"], &["/operator/replicas"]),
        (
            &["--set", "agent.eventBufferCapacity=4096"],
            &["/agent/eventBufferCapacity"],
        ),
        (&["--set-string", "tls.enabled=yes"], &["/tls/enabled", "want boolean"]),
        (&["--set", "relay.retryTimeout=soon"], &["/relay/retryTimeout"]),
    ];
    for (args, expected) in cases {
        let error = render_error(args);
        for needle in expected {
            assert!(
                error.contains(needle),
                "helm template {args:?}: {needle:?} not in:\n{error}"
            );
        }
    }
}

#[test]
fn impossible_combinations_fail_with_a_message_naming_the_keys() {
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "--set",
                "tls.enabled=false",
                "--set",
                "ui.enabled=true",
                "--set",
                "ui.tls.client.enabled=true",
            ],
            "ui.tls.client.enabled=true needs relay.tls.server.enabled=true",
        ),
        (
            &["--set", "tls.enabled=false", "--set", "relay.tls.server.enabled=true"],
            "relay.tls.server.enabled=true needs tls.enabled=true",
        ),
        (
            &["--set", "ui.enabled=true", "--set", "relay.enabled=false"],
            "ui.enabled=true needs relay.enabled=true",
        ),
        (
            &["--set", "tls.auto.method=certmanager"],
            "tls.auto.method=certmanager needs tls.auto.certManagerIssuerRef",
        ),
        (
            &[
                "--set",
                "export.static.enabled=true",
                "--set",
                "export.static.filePath=/var/log/flows.log",
            ],
            "export.static.filePath=/var/log/flows.log must be \"stdout\" or a file under /var/run/sightline/",
        ),
        (
            &[
                "--set",
                "export.static.enabled=true",
                "--set",
                "export.static.fieldAggregate={verdict}",
            ],
            "export.static.fieldAggregate needs export.static.aggregationInterval above 0s",
        ),
        (
            &["--set", "peerService.targetPort=4000"],
            "peerService.targetPort=4000 must equal agent.listenPort=4244",
        ),
    ];
    for (args, message) in cases {
        let error = render_error(args);
        assert!(
            error.contains(message),
            "helm template {args:?}: {message:?} not in:\n{error}"
        );
    }
}

fn certificate_secrets(manifests: &Manifests) -> BTreeSet<String> {
    manifests
        .of_kind("Certificate")
        .map(|c| c["spec"]["secretName"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn tls_methods_render_the_sightline_config_mode_and_certificates_they_promise() {
    let operator = render(&[]);
    let config = operator.get("SightlineConfig", "default");
    assert_eq!(config["apiVersion"], "sightline.dev/v1alpha1");
    assert_eq!(config["spec"]["tls"]["mode"], "Auto");
    assert_eq!(config["spec"]["tls"]["certValidity"], "8760h");
    assert_eq!(config["spec"]["tls"]["caValidity"], "26280h");
    assert_eq!(config["spec"]["tls"]["renewBefore"], "720h");
    assert!(certificate_secrets(&operator).is_empty());

    let certmanager = render_file(&ci_values("tls-certmanager-values.yaml"));
    assert_eq!(
        certmanager.get("SightlineConfig", "default")["spec"]["tls"]["mode"],
        "External"
    );
    let expected: BTreeSet<String> = [
        "hubble-server-certs",
        "hubble-relay-client-certs",
        "hubble-relay-server-certs",
        "sightline-cli-certs",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(certificate_secrets(&certmanager), expected);
    let server = certmanager.get("Certificate", "hubble-server-certs");
    assert_eq!(
        strings(&server["spec"]["dnsNames"]),
        ["*.default.hubble-grpc.cilium.io"]
    );
    assert_eq!(server["spec"]["issuerRef"]["kind"], "ClusterIssuer");
    assert_eq!(server["spec"]["issuerRef"]["name"], "sightline-ca");
    assert_eq!(server["spec"]["duration"], "8760h");

    let with_metrics_tls = render(&[
        "-f",
        ci_values("tls-certmanager-values.yaml").to_str().expect("UTF-8"),
        "--set",
        "metrics.tls.enabled=true",
    ]);
    let metrics = with_metrics_tls.get("Certificate", "hubble-metrics-server-certs");
    assert_eq!(
        strings(&metrics["spec"]["dnsNames"]),
        ["default.hubble-metrics.cilium.io"]
    );

    let external = render_file(&ci_values("tls-external-values.yaml"));
    assert_eq!(
        external.get("SightlineConfig", "default")["spec"]["tls"]["mode"],
        "External"
    );
    assert!(certificate_secrets(&external).is_empty());

    let operator_tls = render_file(&ci_values("tls-operator-values.yaml"));
    let tls = &operator_tls.get("SightlineConfig", "default")["spec"]["tls"];
    assert_eq!(strings(&tls["extraDnsNames"]), ["hubble.example.com"]);
    assert_eq!(strings(&tls["extraIpAddresses"]), ["10.0.0.10"]);
}

#[test]
fn tls_on_mounts_hubble_secrets_and_tls_off_disables_it_on_both_sides() {
    let on = render(&[]);
    let agent = args(container(on.get("DaemonSet", "sightline-agent"), "agent"));
    assert_eq!(
        flag(&agent, "tls-cert-file").as_deref(),
        Some("/var/lib/sightline/tls/server.crt")
    );
    assert_eq!(
        flag(&agent, "tls-client-ca-files").as_deref(),
        Some("/var/lib/sightline/tls/client-ca.crt")
    );
    let volumes = &on.get("DaemonSet", "sightline-agent")["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["secret"]["secretName"] == "hubble-server-certs")
    );
    let relay_deployment = on.get("Deployment", "hubble-relay");
    let relay = args(container(relay_deployment, "relay"));
    assert!(flag(&relay, "tls-hubble-client-cert-file").is_some());
    assert!(
        relay.contains(&"--disable-server-tls".to_owned()),
        "relay server TLS is off by default: {relay:?}"
    );
    let sources = &relay_deployment["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"];
    assert_eq!(sources[0]["secret"]["name"], "hubble-relay-client-certs");

    let off = render_file(&ci_values("tls-off-values.yaml"));
    let agent = args(container(off.get("DaemonSet", "sightline-agent"), "agent"));
    assert!(agent.contains(&"--disable-server-tls".to_owned()));
    assert!(flag(&agent, "tls-cert-file").is_none());
    let relay = args(container(off.get("Deployment", "hubble-relay"), "relay"));
    assert!(relay.contains(&"--disable-client-tls".to_owned()));
    assert!(!off.text.contains("secretName: hubble-") && !off.text.contains("name: hubble-relay-client-certs"));
}

#[test]
fn service_monitors_render_only_when_the_api_is_served_or_trusted() {
    let count = |m: &Manifests| m.of_kind("ServiceMonitor").count();
    let enabled = ["--set", "metrics.serviceMonitor.enabled=true"];
    assert_eq!(count(&render(&[])), 0);
    let without_api = render(&enabled);
    assert_eq!(count(&without_api), 0);
    let mut with_api = enabled.to_vec();
    with_api.extend(["--api-versions", "monitoring.coreos.com/v1"]);
    let with_api = render(&with_api);
    assert_eq!(count(&with_api), 2);
    let trusted = render_file(&ci_values("metrics-servicemonitor-values.yaml"));
    assert_eq!(count(&trusted), 2);
    let agents = trusted.get("ServiceMonitor", "hubble");
    assert_eq!(agents["spec"]["endpoints"][0]["port"], "hubble-metrics");
    assert_eq!(agents["spec"]["endpoints"][0]["interval"], "30s");
    assert_eq!(agents["metadata"]["labels"]["release"], "kube-prometheus-stack");
    assert_eq!(
        trusted.get("ServiceMonitor", "hubble-relay")["spec"]["endpoints"][0]["port"],
        "prometheus"
    );
    // Each ServiceMonitor's port name exists on a Service its selector matches.
    assert_eq!(
        trusted.get("Service", "hubble-metrics")["spec"]["ports"][0]["port"],
        9965
    );
    assert_eq!(
        trusted.get("Service", "hubble-relay-metrics")["spec"]["ports"][0]["port"],
        9966
    );
}

#[test]
fn metrics_list_and_export_settings_reach_the_agent_in_hubble_syntax() {
    let metrics = render_file(&ci_values("metrics-servicemonitor-values.yaml"));
    let agent = args(container(metrics.get("DaemonSet", "sightline-agent"), "agent"));
    assert_eq!(flag(&agent, "metrics-server").as_deref(), Some(":9965"));
    assert_eq!(
        flag(&agent, "metrics").as_deref(),
        Some(
            "dns:query;ignoreAAAA drop:sourceContext=pod;destinationContext=pod tcp flow port-distribution icmp \
             httpV2:exemplars=true;labelsContext=source_namespace,destination_namespace"
        )
    );
    assert!(agent.contains(&"--enable-open-metrics".to_owned()));
    assert_eq!(
        flag(&agent, "metrics-server-tls-cert-file").as_deref(),
        Some("/var/lib/sightline/metrics-tls/server.crt")
    );
    assert_eq!(
        flag(&agent, "metrics-server-tls-client-ca-files").as_deref(),
        Some("/var/lib/sightline/metrics-tls/client-ca.crt")
    );
    let scrape = &metrics.get("ServiceMonitor", "hubble")["spec"]["endpoints"][0];
    assert_eq!(scrape["scheme"], "https");
    assert_eq!(scrape["tlsConfig"]["serverName"], "default.hubble-metrics.cilium.io");
    assert_eq!(
        scrape["tlsConfig"]["ca"]["secret"]["name"],
        "hubble-metrics-server-certs"
    );
    let volumes = &metrics.get("DaemonSet", "sightline-agent")["spec"]["template"]["spec"]["volumes"];
    assert!(
        volumes
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["secret"]["secretName"] == "hubble-metrics-server-certs")
    );
    let annotations = &metrics.get("DaemonSet", "sightline-agent")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], "9965");

    let export = render_file(&ci_values("export-values.yaml"));
    let agent = args(container(export.get("DaemonSet", "sightline-agent"), "agent"));
    assert_eq!(
        flag(&agent, "export-file-path").as_deref(),
        Some("/var/run/sightline/events.log")
    );
    assert_eq!(flag(&agent, "export-file-max-size-mb").as_deref(), Some("50"));
    assert_eq!(flag(&agent, "export-file-max-backups").as_deref(), Some("3"));
    assert!(agent.contains(&"--export-file-compress".to_owned()));
    assert_eq!(
        flag(&agent, "export-allowlist").as_deref(),
        Some(r#"{"verdict":["DROPPED"]} {"source_pod":["kube-system/"]}"#)
    );
    assert_eq!(
        flag(&agent, "export-denylist").as_deref(),
        Some(r#"{"destination_port":["53"]}"#)
    );
    assert_eq!(
        flag(&agent, "export-fieldmask").as_deref(),
        Some("time source.namespace source.pod_name destination.namespace destination.pod_name verdict")
    );
    assert!(flag(&agent, "export-fieldaggregate").is_none() && flag(&agent, "export-aggregation-interval").is_none());

    let aggregated = render_file(&ci_values("export-aggregation-values.yaml"));
    let agent = args(container(aggregated.get("DaemonSet", "sightline-agent"), "agent"));
    assert_eq!(
        flag(&agent, "export-fieldaggregate").as_deref(),
        Some("source.namespace destination.namespace verdict")
    );
    assert_eq!(flag(&agent, "export-aggregation-interval").as_deref(), Some("30s"));
    let defaults = args(container(render(&[]).get("DaemonSet", "sightline-agent"), "agent"));
    assert!(flag(&defaults, "export-file-path").is_none() && flag(&defaults, "metrics").is_none());
    assert!(
        flag(&defaults, "export-fieldaggregate").is_none() && flag(&defaults, "export-aggregation-interval").is_none()
    );
    assert!(flag(&defaults, "metrics-server-tls-cert-file").is_none());
}

#[test]
fn overrides_reach_each_component() {
    let m = render_file(&ci_values("overrides-values.yaml"));
    let agent_ds = m.get("DaemonSet", "sightline-agent");
    let agent = container(agent_ds, "agent");
    assert_eq!(agent["image"], "registry.example.com/mirror/sightline-agent:0.1.0-rc1");
    assert_eq!(
        container(m.get("Deployment", "hubble-relay"), "relay")["image"],
        "registry.example.com/mirror/sightline-relay@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(
        container(m.get("Deployment", "sightline-operator"), "operator")["image"],
        format!(
            "registry.example.com/mirror/sightline-operator:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let pod = &agent_ds["spec"]["template"]["spec"];
    let pull: Vec<&str> = pod["imagePullSecrets"]
        .as_array()
        .expect("pull secrets")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(pull, ["mirror-pull", "agent-pull"]);
    assert_eq!(
        agent_ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        "10%"
    );
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");
    assert_eq!(pod["nodeSelector"]["sightline.dev/observe"], "true");
    assert!(pod["affinity"]["nodeAffinity"].is_object());
    assert_eq!(agent["resources"]["limits"]["memory"], "2Gi");
    assert_eq!(
        agent_ds["spec"]["template"]["metadata"]["annotations"]["team"],
        "netops"
    );
    assert_eq!(
        agent_ds["spec"]["template"]["metadata"]["labels"]["tier"],
        "observability"
    );
    let agent_args = args(agent);
    assert!(agent_args.contains(&"--drop-events=all".to_owned()));
    // A live setting: it reaches the agents through the operator's ConfigMap, not a flag.
    assert_eq!(flag(&agent_args, "interfaces"), None);
    assert_eq!(
        m.get("SightlineConfig", "default")["spec"]["agent"]["interfaces"],
        serde_json::json!(["lxc*", "veth*"])
    );
    assert_eq!(flag(&agent_args, "xdp-interfaces").as_deref(), Some("eth0"));
    assert_eq!(flag(&agent_args, "cluster-name").as_deref(), Some("prod.eu-1"));
    assert!(
        agent["env"]
            .as_array()
            .expect("env")
            .iter()
            .any(|e| e["name"] == "RUST_BACKTRACE")
    );

    let relay = m.get("Deployment", "hubble-relay");
    assert_eq!(relay["spec"]["replicas"], 2);
    let relay_args = args(container(relay, "relay"));
    // A live setting: it reaches the relay through the operator's ConfigMap, not a flag.
    assert_eq!(flag(&relay_args, "sort-buffer-len-max"), None);
    assert_eq!(
        m.get("SightlineConfig", "default")["spec"]["relay"]["sortBufferLenMax"],
        500
    );
    // extraArgs come last, so they win over the chart's own flags.
    assert_eq!(relay_args.last().map(String::as_str), Some("--retry-timeout=10s"));
    assert_eq!(m.get("Service", "hubble-relay")["spec"]["type"], "LoadBalancer");
    assert_eq!(
        m.get("PodDisruptionBudget", "hubble-relay")["spec"]["maxUnavailable"],
        1
    );

    let operator = m.get("Deployment", "sightline-operator");
    assert_eq!(operator["spec"]["replicas"], 2);
    let operator_container = container(operator, "operator");
    let operator_args = args(operator_container);
    assert!(operator_args.contains(&"--log-format=json".to_owned()));
    // Two replicas elect a leader under their pod names, spread over nodes.
    let identity = operator_container["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "POD_NAME")
        .expect("POD_NAME");
    assert_eq!(identity["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    let spread = &operator["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "kubernetes.io/hostname");
    assert!(m.find("PodDisruptionBudget", "sightline-operator").is_some());
    let single = render(&[]);
    let single_operator = single.get("Deployment", "sightline-operator");
    assert!(single_operator["spec"]["template"]["spec"]["topologySpreadConstraints"].is_null());
    let single_args = args(container(single_operator, "operator"));
    assert_eq!(flag(&single_args, "namespace").as_deref(), Some(NAMESPACE));
    assert_eq!(flag(&single_args, "metrics-address").as_deref(), Some("0.0.0.0:9967"));
    assert_eq!(
        flag(&single_args, "agent-daemonset").as_deref(),
        Some("sightline-agent")
    );

    let config = &m.get("SightlineConfig", "default")["spec"];
    assert_eq!(config["clusterName"], "prod.eu-1");
    let overrides = &m.get("SightlineConfig", "default")["spec"]["nodeOverrides"];
    assert_eq!(overrides[0]["agent"]["monitorAggregation"], "maximum");
    assert_eq!(m.of_kind("NetworkPolicy").count(), 2);
}

fn install_notes(extra: &[&str]) -> String {
    let chart = chart_dir();
    let mut args = vec![
        "install",
        "sightline",
        chart.to_str().expect("UTF-8"),
        "-n",
        NAMESPACE,
        "--dry-run=client",
    ];
    args.extend_from_slice(extra);
    let output = helm(&args);
    assert!(
        output.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_once("NOTES:").expect("helm prints NOTES").1.to_owned()
}

#[test]
fn notes_tell_how_to_reach_the_relay_with_the_hubble_cli() {
    let plain = install_notes(&[]);
    assert!(
        plain.contains("kubectl -n sightline port-forward svc/hubble-relay 4245:80"),
        "{plain}"
    );
    assert!(plain.contains("hubble observe --server localhost:4245"), "{plain}");
    assert!(!plain.contains("sightline-cli-certs"), "{plain}");

    let tls = install_notes(&["-f", ci_values("tls-operator-values.yaml").to_str().expect("UTF-8")]);
    assert!(tls.contains("port-forward svc/hubble-relay 4245:443"), "{tls}");
    assert!(tls.contains("get secret sightline-cli-certs"), "{tls}");
    assert!(tls.contains("--tls-server-name ui.hubble-relay.cilium.io"), "{tls}");

    let missing_api = install_notes(&["--set", "metrics.serviceMonitor.enabled=true"]);
    assert!(missing_api.contains("no ServiceMonitor was created"), "{missing_api}");
}

/// The Python that `scripts/setup` installed kubernetes-validate into; it brings
/// `jsonschema` and `yaml`, an independent validator for the CRD's schema.
const TOOLS_PYTHON: &str = "/opt/sightline-tools/venv/bin/python";

const VALIDATE_AGAINST_CRD: &str = r#"
import json, sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
def close(node):
    # Structural schemas forbid unknown fields (the API server prunes or, with
    # strict field validation, rejects them): say so to jsonschema.
    if isinstance(node, dict):
        if (node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            close(value)
    elif isinstance(node, list):
        for value in node:
            close(value)
# The API server adds these to every resource's schema.
schema.setdefault("properties", {}).update(
    {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
close(schema)
errors = []
for document in yaml.safe_load_all(sys.stdin):
    if document and document.get("kind") == "SightlineConfig":
        for error in jsonschema.Draft7Validator(schema).iter_errors(document):
            errors.append("/".join(map(str, error.absolute_path)) + ": " + error.message)
print(json.dumps(errors))
"#;

#[test]
fn the_rendered_sightline_config_is_valid_for_the_committed_crd() {
    let crd = chart_dir().join("crds/sightlineconfigs.sightline.dev.yaml");
    assert!(crd.exists(), "{} is generated by the operator crate", crd.display());
    let mut files: Vec<Option<std::path::PathBuf>> = vec![None];
    files.extend(ci_values_files().into_iter().map(Some));
    for values in files {
        let rendered = match &values {
            Some(path) => render_file(path),
            None => render(&[]),
        };
        assert!(
            rendered.find("SightlineConfig", "default").is_some(),
            "{values:?}: no SightlineConfig named default"
        );
        let mut child = std::process::Command::new(TOOLS_PYTHON)
            .args(["-c", VALIDATE_AGAINST_CRD])
            .arg(&crd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the tools venv (bash scripts/setup)");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(rendered.text.as_bytes()).expect("write manifests");
        }
        let output = child.wait_with_output().expect("validator");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let errors: Vec<String> = serde_json::from_slice(&output.stdout).expect("a JSON list");
        assert!(errors.is_empty(), "{values:?}: {errors:#?}");
    }
}
