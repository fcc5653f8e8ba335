//! Name-shaped filter values: `namespace/prefix` for pods and services, FQDN-style
//! wildcard patterns for DNS names and `cluster/node` node names.

use regex::Regex;

use super::FilterError;

/// `ns/prefix`, `ns/`, `/prefix` or a bare `prefix` (namespace "default").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamespacedPrefix {
    pub namespace: String,
    pub prefix: String,
}

impl NamespacedPrefix {
    pub(crate) fn parse(field: &'static str, value: &str) -> Result<Self, FilterError> {
        if value.is_empty() {
            return Err(FilterError::invalid(field, value, "name must not be empty"));
        }
        Ok(match value.split_once('/') {
            Some((namespace, prefix)) => Self {
                namespace: namespace.to_owned(),
                prefix: prefix.to_owned(),
            },
            None => Self {
                namespace: "default".to_owned(),
                prefix: value.to_owned(),
            },
        })
    }

    pub(crate) fn matches(&self, namespace: &str, name: &str) -> bool {
        if namespace.is_empty() && name.is_empty() {
            return false;
        }
        (self.prefix.is_empty() || name.starts_with(&self.prefix))
            && (self.namespace.is_empty() || self.namespace == namespace)
    }
}

/// Turns one FQDN-style pattern into a regex fragment: `*` matches `[-.0-9a-z]*`.
fn fqdn_fragment(field: &'static str, pattern: &str) -> Result<String, FilterError> {
    let trimmed = pattern.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed).to_lowercase();
    let mut fragment = String::with_capacity(trimmed.len() * 2);
    for c in trimmed.chars() {
        match c {
            '*' => fragment.push_str("[-.0-9a-z]*"),
            '.' => fragment.push_str("\\."),
            '-' | '_' | '0'..='9' | 'a'..='z' => fragment.push(c),
            _ => {
                return Err(FilterError::invalid(
                    field,
                    pattern,
                    format!("character {c:?} is not allowed in a name pattern"),
                ));
            }
        }
    }
    Ok(fragment)
}

fn anchored(field: &'static str, alternatives: &[String], shown: &str) -> Result<Regex, FilterError> {
    Regex::new(&format!(r"\A(?:{})\z", alternatives.join("|")))
        .map_err(|e| FilterError::invalid(field, shown, e.to_string()))
}

/// One anchored regex for a list of FQDN patterns (OR).
pub(super) fn fqdn_regex(field: &'static str, patterns: &[String]) -> Result<Regex, FilterError> {
    let fragments = patterns
        .iter()
        .map(|p| fqdn_fragment(field, p))
        .collect::<Result<Vec<_>, _>>()?;
    anchored(field, &fragments, &patterns.join(","))
}

/// One anchored regex over `cluster/node` for a list of node-name patterns.
pub(super) fn node_name_regex(field: &'static str, patterns: &[String]) -> Result<Regex, FilterError> {
    let mut fragments = Vec::with_capacity(patterns.len());
    for pattern in patterns {
        if pattern.is_empty() {
            return Err(FilterError::invalid(
                field,
                pattern,
                "node name pattern must not be empty",
            ));
        }
        let (cluster, node) = match pattern.split_once('/') {
            Some((_, rest)) if rest.contains('/') => {
                return Err(FilterError::invalid(
                    field,
                    pattern,
                    "too many '/' in node name pattern",
                ));
            }
            Some((cluster, node)) => (cluster, node),
            None => ("*", pattern.as_str()),
        };
        let cluster = if cluster.is_empty() { "*" } else { cluster };
        let node = if node.is_empty() { "*" } else { node };
        fragments.push(format!(
            "{}/{}",
            fqdn_fragment(field, cluster)?,
            fqdn_fragment(field, node)?
        ));
    }
    anchored(field, &fragments, &patterns.join(","))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pod_values_follow_hubble_namespace_rules() {
        let bare = NamespacedPrefix::parse("source_pod", "xwing").unwrap();
        assert!(bare.matches("default", "xwing-1"));
        assert!(!bare.matches("kube-system", "xwing-1"));
        let any_ns = NamespacedPrefix::parse("source_pod", "/core").unwrap();
        assert!(any_ns.matches("kube-system", "coredns"));
        let any_pod = NamespacedPrefix::parse("source_pod", "kube-system/").unwrap();
        assert!(any_pod.matches("kube-system", "x"));
        assert!(!any_pod.matches("", ""));
        assert!(NamespacedPrefix::parse("source_pod", "").is_err());
    }

    #[test]
    fn fqdn_patterns() {
        let re = fqdn_regex("source_fqdn", &["*.Cilium.io.".into(), " api.example.com ".into()]).unwrap();
        assert!(re.is_match("docs.cilium.io"));
        assert!(re.is_match("a.b.cilium.io"));
        assert!(re.is_match("api.example.com"));
        assert!(!re.is_match("cilium.io.evil.com"));
        assert!(fqdn_regex("source_fqdn", &["bad name".into()]).is_err());
    }

    #[test]
    fn node_name_patterns() {
        let re = node_name_regex("node_name", &["k8s*".into(), "prod/".into()]).unwrap();
        assert!(re.is_match("default/k8s1"));
        assert!(re.is_match("prod/anything"));
        assert!(!re.is_match("default/worker"));
        assert!(node_name_regex("node_name", &["a/b/c".into()]).is_err());
    }
}
