//! The operator's API calls, as the fake API server logged them, checked against
//! the RBAC rules `docs/operator.md` documents (which the chart's roles must equal,
//! see the chart's tests): a call a real API server would refuse fails the test.
#![allow(clippy::unwrap_used, dead_code)]

use serde_json::Value;

/// One documented rule: API groups, resources (`kind/subresource` too), names, verbs.
struct Rule {
    groups: Vec<String>,
    resources: Vec<String>,
    names: Vec<String>,
    verbs: Vec<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The `rules:` blocks under "## RBAC": the ClusterRole, the Role in the operator's
/// namespace, the Role in `default` (Events).
fn documented() -> [Vec<Rule>; 3] {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operator.md")).unwrap();
    let section = &docs[docs.find("## RBAC").unwrap()..];
    let blocks: Vec<Vec<Rule>> = section
        .split("```yaml")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or_default())
        .map(|yaml| {
            let parsed: Value = serde_yaml_ng::from_str(yaml).unwrap();
            parsed["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|rule| Rule {
                    groups: strings(&rule["apiGroups"]),
                    resources: strings(&rule["resources"]),
                    names: strings(&rule["resourceNames"]),
                    verbs: strings(&rule["verbs"]),
                })
                .collect()
        })
        .collect();
    blocks.try_into().ok().expect("three rules blocks")
}

/// What RBAC sees in one logged request (`METHOD /path`, `WATCH /path` for watches).
struct Call {
    verb: &'static str,
    group: String,
    namespace: Option<String>,
    resource: String,
    name: Option<String>,
}

fn call(line: &str) -> Option<Call> {
    let (method, path) = line.split_once(' ').unwrap();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.first() {
        Some(&"api") => (String::new(), &segments[2..]),
        Some(&"apis") => (segments[1].to_owned(), &segments[3..]),
        // /version and other non-resource URLs: readable by every authenticated user.
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, tail @ ..] if !tail.is_empty() => (Some((*namespace).to_owned()), tail),
        _ => (None, rest),
    };
    let resource = match rest {
        [kind, _, subresource] => format!("{kind}/{subresource}"),
        [kind, ..] => (*kind).to_owned(),
        [] => return None,
    };
    let name = rest.get(1).map(|name| (*name).to_owned());
    let verb = match (method, &name) {
        ("WATCH", _) => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        _ => panic!("unexpected method in {line}"),
    };
    Some(Call {
        verb,
        group,
        namespace,
        resource,
        name,
    })
}

fn allows(rule: &Rule, call: &Call) -> bool {
    let any = |list: &[String], wanted: &str| list.iter().any(|item| item == wanted || item == "*");
    any(&rule.groups, &call.group)
        && any(&rule.resources, &call.resource)
        && any(&rule.verbs, call.verb)
        && (rule.names.is_empty() || call.name.as_deref().is_some_and(|name| any(&rule.names, name)))
}

/// Panics naming every logged call the documented roles do not grant to an
/// operator running in `namespace`.
pub fn assert_documented_rbac_grants(requests: &[String], namespace: &str) {
    let [cluster, own, events] = documented();
    let refused: Vec<&String> = requests
        .iter()
        .filter(|line| {
            let Some(call) = call(line) else { return false };
            let granted_by = |rules: &[Rule]| rules.iter().any(|rule| allows(rule, &call));
            let namespaced = match call.namespace.as_deref() {
                Some(ns) if ns == namespace => granted_by(&own),
                Some("default") => granted_by(&events),
                _ => false,
            };
            !(granted_by(&cluster) || namespaced)
        })
        .collect();
    assert!(
        refused.is_empty(),
        "calls the documented RBAC does not grant (of {} made): {refused:#?}",
        requests.len()
    );
    assert!(!requests.is_empty(), "no call was logged");
}
