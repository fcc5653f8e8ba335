//! What the rendered chart grants and exposes: the hardening of every pod (over every CI
//! values file), the names and ports Hubble's clients expect, and RBAC rules that match
//! what the agent's code watches, derived from the code itself.

mod chart_support;

use std::collections::BTreeSet;

use chart_support::*;
use serde_json::Value;

fn every_rendering() -> Vec<(String, Manifests)> {
    let mut all = vec![("defaults".to_owned(), render(&[]))];
    for values in ci_values_files() {
        all.push((values.display().to_string(), render_file(&values)));
    }
    all
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A container setting, falling back to the pod's securityContext (as the kubelet does).
fn effective<'a>(pod: &'a Value, container: &'a Value, key: &str) -> &'a Value {
    let own = &container["securityContext"][key];
    if own.is_null() {
        &pod["securityContext"][key]
    } else {
        own
    }
}

#[test]
fn no_pod_is_privileged_and_every_container_is_locked_down() {
    for (label, manifests) in every_rendering() {
        let mut privileged = vec![];
        for object in &manifests.objects {
            find_key(object, "privileged", name(object), &mut privileged);
        }
        assert!(
            privileged.iter().all(|(_, v)| *v == false),
            "{label}: privileged set: {privileged:?}"
        );
        for (workload, pod) in manifests.pod_specs() {
            assert!(
                pod["hostPID"].is_null() && pod["hostIPC"].is_null(),
                "{label}: {workload} shares host namespaces"
            );
            let is_agent = workload == "sightline-agent";
            assert_eq!(
                pod["hostNetwork"] == true,
                is_agent,
                "{label}: only the agent uses the host network ({workload})"
            );
            for container in containers(pod) {
                let at = format!("{label}: {workload}/{}", container["name"]);
                let sc = &container["securityContext"];
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{at}: read-only root");
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{at}: no privilege escalation");
                assert_eq!(
                    effective(pod, container, "seccompProfile")["type"],
                    "RuntimeDefault",
                    "{at}: seccomp"
                );
                assert_eq!(
                    strings(&sc["capabilities"]["drop"]),
                    ["ALL"],
                    "{at}: drops all capabilities"
                );
                let added: BTreeSet<String> = strings(&sc["capabilities"]["add"]).into_iter().collect();
                if is_agent {
                    assert_eq!(
                        added,
                        set(&["BPF", "NET_ADMIN", "PERFMON"]),
                        "{at}: exactly the agent's capabilities"
                    );
                } else {
                    assert!(added.is_empty(), "{at}: adds {added:?}");
                    assert_eq!(
                        effective(pod, container, "runAsNonRoot"),
                        &Value::Bool(true),
                        "{at}: non-root"
                    );
                    assert_ne!(sc["runAsUser"], 0, "{at}: uid 0");
                }
            }
        }
    }
}

#[test]
fn the_agent_mounts_only_btf_and_its_socket_directory_from_the_host() {
    for (label, manifests) in every_rendering() {
        for (workload, pod) in manifests.pod_specs() {
            let host_paths: BTreeSet<String> = pod["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["hostPath"]["path"].as_str().map(str::to_owned))
                .collect();
            let expected = if workload == "sightline-agent" {
                set(&["/sys/kernel/btf", "/var/run/sightline"])
            } else {
                set(&[])
            };
            assert_eq!(host_paths, expected, "{label}: host paths of {workload}");
        }
        let agent = manifests.get("DaemonSet", "sightline-agent");
        let mounts = &container(agent, "agent")["volumeMounts"];
        let btf = mounts
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["name"] == "btf")
            .expect("btf mount");
        assert_eq!(btf["readOnly"], true, "{label}: BTF is read-only");
    }
}

#[test]
fn no_rbac_rule_uses_a_wildcard_and_the_relay_reads_only_its_config_map() {
    for (label, manifests) in every_rendering() {
        for object in manifests.of_kind("ClusterRole").chain(manifests.of_kind("Role")) {
            for rule in object["rules"].as_array().expect("rules") {
                for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                    assert!(
                        !strings(&rule[field]).iter().any(|s| s.contains('*')),
                        "{label}: {} {field} has *",
                        name(object)
                    );
                }
            }
        }
        // The relay's one grant is reading its ConfigMap, and only when the operator
        // renders it; otherwise it gets no token at all.
        let relay_bindings: Vec<String> = manifests
            .of_kind("ClusterRoleBinding")
            .chain(manifests.of_kind("RoleBinding"))
            .filter(|binding| {
                binding["subjects"]
                    .as_array()
                    .expect("subjects")
                    .iter()
                    .any(|s| s["name"] == "hubble-relay")
            })
            .map(|binding| format!("{} {}", binding["kind"].as_str().unwrap_or_default(), name(binding)))
            .collect();
        if let Some(relay) = manifests.find("Deployment", "hubble-relay") {
            let follows =
                strings(&container(relay, "relay")["args"]).contains(&"--config-map=sightline-relay-config".to_owned());
            let expected = if follows {
                vec!["RoleBinding hubble-relay".to_owned()]
            } else {
                vec![]
            };
            assert_eq!(relay_bindings, expected, "{label}");
            assert_eq!(
                relay["spec"]["template"]["spec"]["automountServiceAccountToken"], follows,
                "{label}: a token only to watch the ConfigMap"
            );
        } else {
            assert!(relay_bindings.is_empty(), "{label}: {relay_bindings:?}");
        }
        // Secrets are the operator's alone, and only in its namespace.
        for role in manifests.of_kind("ClusterRole") {
            let kinds: Vec<String> = role["rules"]
                .as_array()
                .expect("rules")
                .iter()
                .flat_map(|r| strings(&r["resources"]))
                .collect();
            assert!(
                !kinds.contains(&"secrets".to_owned()),
                "{label}: ClusterRole {} reads secrets",
                name(role)
            );
        }
    }
}

#[test]
fn hubble_names_and_ports_are_where_hubble_clients_look() {
    let m = render(&[]);
    let peer = m.get("Service", "hubble-peer");
    assert_eq!(peer["spec"]["internalTrafficPolicy"], "Local");
    assert_eq!(peer["spec"]["ports"][0]["port"], 443);
    assert_eq!(peer["spec"]["ports"][0]["targetPort"], 4244);
    let relay_service = m.get("Service", "hubble-relay");
    assert_eq!(relay_service["spec"]["ports"][0]["port"], 80);
    let target = relay_service["spec"]["ports"][0]["targetPort"]
        .as_str()
        .expect("named target port");
    let relay = m.get("Deployment", "hubble-relay");
    let relay_container = container(relay, "relay");
    let port = relay_container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == target)
        .expect("port");
    assert_eq!(port["containerPort"], 4245);
    let relay_args = args(relay_container);
    assert_eq!(flag(&relay_args, "listen-address").as_deref(), Some(":4245"));
    assert_eq!(flag(&relay_args, "health-listen-address").as_deref(), Some(":4222"));
    assert_eq!(flag(&relay_args, "metrics-listen-address").as_deref(), Some(":9966"));
    assert_eq!(
        flag(&relay_args, "peer-service").as_deref(),
        Some("hubble-peer.sightline.svc.cluster.local:443")
    );
    assert_eq!(relay_container["readinessProbe"]["grpc"]["port"], 4222);
    assert_eq!(relay_container["livenessProbe"]["grpc"]["port"], 4222);

    let agent_ds = m.get("DaemonSet", "sightline-agent");
    let pod = &agent_ds["spec"]["template"]["spec"];
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert_eq!(pod["tolerations"], serde_json::json!([{ "operator": "Exists" }]));
    assert_eq!(agent_ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"], 2);
    let agent = container(agent_ds, "agent");
    let ports: BTreeSet<i64> = agent["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .filter_map(|p| p["containerPort"].as_i64())
        .collect();
    assert_eq!(ports, [4244, 4246, 9965].into());
    let node_name = agent["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("NODE_NAME");
    assert_eq!(node_name["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    assert_eq!(flag(&args(agent), "cluster-name").as_deref(), Some("default"));
    assert_eq!(flag(&args(agent), "listen-address").as_deref(), Some(":4244"));
    // The kubelet's gRPC probe cannot speak TLS: it asks the plaintext health port.
    assert_eq!(flag(&args(agent), "health-listen-address").as_deref(), Some(":4246"));
    assert_eq!(agent["readinessProbe"]["grpc"]["port"], 4246);
    assert_eq!(agent["livenessProbe"]["grpc"]["port"], 4246);

    let plain = render_file(&ci_values("tls-off-values.yaml"));
    assert_eq!(plain.get("Service", "hubble-peer")["spec"]["ports"][0]["port"], 80);
    let relay_args = args(container(plain.get("Deployment", "hubble-relay"), "relay"));
    assert_eq!(
        flag(&relay_args, "peer-service").as_deref(),
        Some("hubble-peer.sightline.svc.cluster.local:80")
    );
    let agent = container(plain.get("DaemonSet", "sightline-agent"), "agent");
    assert_eq!(agent["readinessProbe"]["grpc"]["port"], 4246);
    assert_eq!(agent["livenessProbe"]["grpc"]["port"], 4246);

    let ui = render_file(&ci_values("ui-values.yaml"));
    assert_eq!(ui.get("Service", "hubble-relay")["spec"]["ports"][0]["port"], 443);
    let backend = container(ui.get("Deployment", "hubble-ui"), "backend");
    let env = backend["env"].as_array().expect("env");
    let value = |key: &str| env.iter().find(|e| e["name"] == key).map(|e| e["value"].clone());
    assert_eq!(value("FLOWS_API_ADDR"), Some("hubble-relay:443".into()));
    assert_eq!(value("TLS_RELAY_SERVER_NAME"), Some("ui.hubble-relay.cilium.io".into()));
    assert_eq!(ui.get("Service", "hubble-ui")["spec"]["ports"][0]["port"], 80);
}

/// `k8s_openapi::api::<group>::<version>::Kind` → the API group RBAC names.
fn api_group(module: &str) -> &'static str {
    match module {
        "core" => "",
        "apps" => "apps",
        "batch" => "batch",
        "discovery" => "discovery.k8s.io",
        "networking" => "networking.k8s.io",
        other => panic!("agent/src/k8s/watch.rs imports k8s_openapi::api::{other}; teach this test its API group"),
    }
}

fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    }
}

/// (group, resource) for every `spawn::<Kind>` in the agent's watcher, resolved through the
/// file's `use k8s_openapi::api::...` imports.
fn kinds_the_agent_watches() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(repo_root().join("agent/src/k8s/watch.rs")).expect("watch.rs");
    let mut group_of = std::collections::BTreeMap::new();
    for line in source.lines() {
        let Some(path) = line.trim().strip_prefix("use k8s_openapi::api::") else {
            continue;
        };
        let path = path.trim_end_matches(';');
        let mut parts = path.splitn(3, "::");
        let (Some(module), Some(_version), Some(kinds)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("unexpected import {line}");
        };
        for kind in kinds.trim_matches(|c| c == '{' || c == '}').split(',') {
            group_of.insert(kind.trim().to_owned(), api_group(module));
        }
    }
    let mut watched = BTreeSet::new();
    for piece in source.split("spawn::<").skip(1) {
        let kind = piece.split('>').next().expect("closing >").trim();
        if kind == "K" {
            continue; // the generic helper's own definition
        }
        let group = group_of
            .get(kind)
            .unwrap_or_else(|| panic!("{kind} is watched but not imported from k8s_openapi"));
        watched.insert((group.to_string(), plural(kind)));
    }
    assert!(watched.len() >= 8, "parsed too few kinds from watch.rs: {watched:?}");
    watched
}

/// Any other Kubernetes API use in the agent would need rules this test does not know.
fn assert_no_other_api_calls_in_the_agent() {
    let mut stack = vec![repo_root().join("agent/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("agent/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("k8s/watch.rs")
                && !path.ends_with("live/runtime.rs")
            {
                let text = std::fs::read_to_string(&path).expect("source");
                for needle in ["Api::all", "Api::namespaced", "Api::<", "Api::default_namespaced"] {
                    assert!(
                        !text.contains(needle),
                        "{} calls {needle}: add its RBAC to the chart and this test",
                        path.display()
                    );
                }
            }
        }
    }
}

/// A binary's ConfigMap source hands its `Api` to the shared watcher in
/// `sightline-common`, which only lists and watches, selected by name.
fn assert_config_map_only_watched_by_name(source: &str, file: &str) {
    let compact: String = source.split_whitespace().collect();
    assert!(
        compact.contains("config_map::watch(api,"),
        "{file} no longer uses the shared watcher: teach this test"
    );
    assert!(!source.contains("api."), "{file} calls the ConfigMap API directly");
    let shared =
        std::fs::read_to_string(repo_root().join("common/src/live_source/config_map.rs")).expect("config_map.rs");
    assert!(shared.contains("watcher::watcher(api") && shared.contains("metadata.name="));
    assert!(!shared.contains("api."), "the shared ConfigMap source is only a watch");
}

/// A binary's generation Lease goes through the shared writer in `sightline-common`,
/// whose one call is a server-side apply (a PATCH that creates the Lease the first time).
fn assert_lease_only_applied(source: &str, file: &str) {
    assert!(
        source.contains(".report(api, generation)") || source.contains("reporter.report("),
        "{file} no longer uses the shared Lease writer: teach this test"
    );
    assert!(!source.contains("api."), "{file} calls the Lease API directly");
    let shared =
        std::fs::read_to_string(repo_root().join("common/src/generation_lease.rs")).expect("generation_lease.rs");
    assert_eq!(
        shared.matches("api.").count(),
        1,
        "the shared Lease writer makes one kind of call"
    );
    assert!(shared.contains("api.patch(") && shared.contains("Patch::Apply"));
}

/// The live configuration's API calls, read from its source: which namespaced kinds it
/// opens an `Api` on, and what it does with each.
fn namespaced_calls_of_the_agent() -> BTreeSet<Rule> {
    let read = |file: &str| std::fs::read_to_string(repo_root().join("agent/src/live").join(file)).expect("source");
    let runtime = read("runtime.rs");
    let opened: Vec<&str> = runtime
        .split("Api::<")
        .skip(1)
        .map(|piece| piece.split('>').next().expect("closing >"))
        .collect();
    assert_eq!(
        opened,
        ["ConfigMap", "Lease"],
        "agent/src/live/runtime.rs opens other APIs: teach this test"
    );
    let (configmap, lease) = (read("configmap.rs"), read("lease.rs"));
    assert_config_map_only_watched_by_name(&configmap, "agent/src/live/configmap.rs");
    assert_lease_only_applied(&lease, "agent/src/live/lease.rs");
    let owned = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect::<Vec<_>>();
    let rule = |group: &str, resource: &str, names: &[&str], verbs: &[&str]| -> Rule {
        (owned(&[group]), owned(&[resource]), owned(names), owned(verbs))
    };
    BTreeSet::from([
        // A watcher lists then watches; `get` is what kubectl and RBAC audits expect
        // alongside a by-name grant, and reveals nothing more.
        rule("", "configmaps", &["sightline-agent-config"], &["get", "list", "watch"]),
        // Server-side apply is a PATCH that creates the object the first time.
        rule("coordination.k8s.io", "leases", &[], &["create", "patch"]),
    ])
}

#[test]
fn the_agent_namespace_role_grants_exactly_the_live_configuration_calls() {
    let m = render(&[]);
    assert_eq!(
        rules_of(&m.get("Role", "sightline-agent")["rules"]),
        namespaced_calls_of_the_agent()
    );
    let binding = m.get("RoleBinding", "sightline-agent");
    assert_eq!(binding["subjects"][0]["name"], "sightline-agent");
    let agent = &m.get("DaemonSet", "sightline-agent")["spec"]["template"]["spec"]["containers"][0];
    let args = strings(&agent["args"]);
    assert!(
        args.contains(&"--config-map=sightline-agent-config".to_owned()),
        "{args:?}"
    );
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--monitor-aggregation") || a.starts_with("--interfaces")),
        "a live setting as a flag would pin it: {args:?}"
    );
    let env = agent["env"].as_array().expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"] == "POD_NAMESPACE" && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"),
        "{env:?}"
    );
    let config = m.get("SightlineConfig", "default");
    assert_eq!(
        config["spec"]["agent"]["monitorAggregation"], "medium",
        "agent.monitorAggregation reaches the agents"
    );
}

/// The relay's API calls, read from its source: the two `Api`s it opens, on its
/// ConfigMap, which it only watches by name, and on its generation Lease, which it
/// only writes by server-side apply.
fn namespaced_calls_of_the_relay() -> BTreeSet<Rule> {
    let mut stack = vec![repo_root().join("relay/src")];
    let mut opened = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("relay/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                // Every `Api::<Kind>::constructor(` and `Api::constructor(` (kind by inference).
                for piece in text.split("Api::").skip(1) {
                    let (kind, rest) = match piece.strip_prefix('<') {
                        Some(generic) => generic.split_once(">::").unwrap_or(("?", "")),
                        None => ("?", piece),
                    };
                    let constructor = rest.split('(').next().unwrap_or_default();
                    opened.push((path.clone(), constructor.to_owned(), kind.to_owned()));
                }
            }
        }
    }
    let mut kinds: Vec<&str> = opened
        .iter()
        .map(|(file, constructor, kind)| {
            assert!(
                file.ends_with("live/runtime.rs") && constructor == "namespaced",
                "the relay opens other APIs: add their RBAC to the chart and this test: {opened:?}"
            );
            kind.as_str()
        })
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        ["ConfigMap", "Lease"],
        "the relay opens other APIs: add their RBAC to the chart and this test: {opened:?}"
    );
    let read = |file: &str| std::fs::read_to_string(repo_root().join("relay/src/live").join(file)).expect("source");
    assert_config_map_only_watched_by_name(&read("configmap.rs"), "relay/src/live/configmap.rs");
    assert_lease_only_applied(&read("runtime.rs"), "relay/src/live/runtime.rs");
    let owned = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect::<Vec<_>>();
    BTreeSet::from([
        (
            owned(&[""]),
            owned(&["configmaps"]),
            owned(&["sightline-relay-config"]),
            owned(&["get", "list", "watch"]),
        ),
        // Server-side apply is a PATCH that creates the object the first time.
        (
            owned(&["coordination.k8s.io"]),
            owned(&["leases"]),
            owned(&[]),
            owned(&["create", "patch"]),
        ),
    ])
}

#[test]
fn the_relay_role_grants_exactly_its_config_map_watch_and_lease_write() {
    let m = render(&[]);
    assert_eq!(
        rules_of(&m.get("Role", "hubble-relay")["rules"]),
        namespaced_calls_of_the_relay()
    );
    let binding = m.get("RoleBinding", "hubble-relay");
    assert_eq!(binding["roleRef"]["name"], "hubble-relay");
    assert_eq!(binding["subjects"][0]["name"], "hubble-relay");
    let relay = container(m.get("Deployment", "hubble-relay"), "relay");
    let relay_args = args(relay);
    assert_eq!(
        flag(&relay_args, "config-map").as_deref(),
        Some("sightline-relay-config")
    );
    for live in [
        "sort-buffer-len-max",
        "sort-buffer-drain-timeout",
        "retry-timeout",
        "dial-timeout",
    ] {
        assert_eq!(flag(&relay_args, live), None, "a live setting as a flag would pin it");
    }
    let env = relay["env"].as_array().expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"] == "POD_NAMESPACE" && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"),
        "{env:?}"
    );
    assert!(
        env.iter()
            .any(|e| e["name"] == "POD_NAME" && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"),
        "the generation Lease is held by the pod's name: {env:?}"
    );
    assert_eq!(
        m.get("SightlineConfig", "default")["spec"]["relay"]["sortBufferLenMax"],
        100
    );

    // Without the operator's configuration: flags, no Role, no token.
    let unmanaged = render(&["--set", "sightlineConfig.create=false"]);
    assert!(unmanaged.find("Role", "hubble-relay").is_none());
    assert!(unmanaged.find("RoleBinding", "hubble-relay").is_none());
    let relay = unmanaged.get("Deployment", "hubble-relay");
    assert_eq!(relay["spec"]["template"]["spec"]["automountServiceAccountToken"], false);
    let relay_args = args(container(relay, "relay"));
    assert_eq!(flag(&relay_args, "config-map"), None);
    assert_eq!(flag(&relay_args, "sort-buffer-len-max").as_deref(), Some("100"));
}

#[test]
fn the_agent_cluster_role_grants_exactly_the_kinds_its_code_watches() {
    assert_no_other_api_calls_in_the_agent();
    let watched = kinds_the_agent_watches();
    let m = render(&[]);
    let role = m.get("ClusterRole", "sightline-sightline-agent");
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        assert_eq!(
            strings(&rule["verbs"]),
            ["list", "watch"],
            "a watcher lists and watches, nothing more: {rule}"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                granted.insert((group.clone(), resource));
            }
        }
    }
    assert_eq!(granted, watched);
    let binding = m.get("ClusterRoleBinding", "sightline-sightline-agent");
    assert_eq!(binding["subjects"][0]["name"], "sightline-agent");
    assert_eq!(
        m.get("DaemonSet", "sightline-agent")["spec"]["template"]["spec"]["serviceAccountName"],
        "sightline-agent"
    );
}

#[test]
fn each_component_has_its_own_service_account() {
    let m = render_file(&ci_values("ui-values.yaml"));
    let mut accounts = BTreeSet::new();
    for (workload, pod) in m.pod_specs() {
        let account = pod["serviceAccountName"]
            .as_str()
            .unwrap_or_else(|| panic!("{workload} has no service account"));
        assert!(
            m.find("ServiceAccount", account).is_some(),
            "{workload}: {account} not rendered"
        );
        assert!(accounts.insert(account.to_owned()), "{account} shared");
    }
    assert_eq!(
        accounts,
        set(&["sightline-agent", "hubble-relay", "sightline-operator", "hubble-ui"])
    );
}

/// One RBAC rule as a comparable value: groups, resources, names and verbs, sorted.
type Rule = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

fn rules_of(value: &Value) -> BTreeSet<Rule> {
    let sorted = |v: &Value| {
        let mut items = strings(v);
        items.sort();
        items
    };
    value
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| {
            (
                sorted(&rule["apiGroups"]),
                sorted(&rule["resources"]),
                sorted(&rule["resourceNames"]),
                sorted(&rule["verbs"]),
            )
        })
        .collect()
}

/// The three `rules:` blocks under "## RBAC" in docs/operator.md, which say exactly
/// what the operator calls: cluster-wide, its namespace, and `default` for Events.
fn documented_operator_rules() -> Vec<BTreeSet<Rule>> {
    let docs = std::fs::read_to_string(repo_root().join("docs/operator.md")).expect("docs/operator.md");
    let section = &docs[docs.find("## RBAC").expect("an RBAC section")..];
    section
        .split("```yaml")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default())
        .map(|yaml| {
            let parsed: Value = serde_yaml_ng::from_str(yaml).expect("the docs' YAML parses");
            rules_of(&parsed["rules"])
        })
        .collect()
}

#[test]
fn the_operator_is_granted_exactly_what_its_docs_say_it_calls() {
    let documented = documented_operator_rules();
    assert_eq!(documented.len(), 3, "ClusterRole, namespace Role, Events Role");
    let m = render(&[]);
    let granted = [
        rules_of(&m.get("ClusterRole", "sightline-sightline-operator")["rules"]),
        rules_of(&m.get("Role", "sightline-operator")["rules"]),
        rules_of(&m.get("Role", "sightline-sightline-operator-events")["rules"]),
    ];
    assert_eq!(granted.as_slice(), documented.as_slice());
    let events = m.get("Role", "sightline-sightline-operator-events");
    assert_eq!(events["metadata"]["namespace"], "default");
    let binding = m.get("RoleBinding", "sightline-sightline-operator-events");
    assert_eq!(binding["subjects"][0]["name"], "sightline-operator");
}

#[test]
fn the_operator_counts_the_relay_pods_the_relay_deployment_selects() {
    let m = render(&[]);
    let operator_args = args(container(m.get("Deployment", "sightline-operator"), "operator"));
    let selector = flag(&operator_args, "relay-pod-selector").expect("--relay-pod-selector");
    let asked: BTreeSet<String> = selector.split(',').map(str::to_owned).collect();
    let relay = m.get("Deployment", "hubble-relay");
    let selected: BTreeSet<String> = relay["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
        .iter()
        .map(|(key, value)| format!("{key}={}", value.as_str().expect("a label value")))
        .collect();
    assert_eq!(
        asked, selected,
        "a relay Lease counts only while a pod of this selector holds it"
    );
    let rules = rules_of(&m.get("Role", "sightline-operator")["rules"]);
    let pods = rules
        .iter()
        .find(|(_, resources, _, _)| resources == &["pods".to_owned()])
        .expect("a rule on pods");
    assert_eq!(pods.3, ["list"], "pods are only listed by selector");
}
