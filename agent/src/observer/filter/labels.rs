//! Kubernetes label selectors over Cilium labels (`source:key=value`).
//!
//! A selector key may carry a Cilium source (`k8s:app`); without one it matches a
//! label of any source. `cidr:` keys match CIDR labels by prefix containment.

use std::net::IpAddr;

use super::FilterError;
use super::ip::Prefix;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    In(Vec<String>),
    NotIn(Vec<String>),
}

#[derive(Debug, Clone)]
struct Requirement {
    /// `None` = any source.
    source: Option<String>,
    key: String,
    cidr: Option<Prefix>,
    op: Op,
}

/// A selector: all requirements must hold.
#[derive(Debug, Clone)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// A flow label split into its parts.
struct Label<'a> {
    source: &'a str,
    key: &'a str,
    value: &'a str,
}

fn parse_label(label: &str) -> Label<'_> {
    let (key_part, value) = label.split_once('=').unwrap_or((label, ""));
    match key_part.split_once(':') {
        Some((source, key)) => Label { source, key, value },
        None => Label {
            source: "unspec",
            key: key_part,
            value,
        },
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn parse_key(key: &str) -> Result<(Option<String>, String), String> {
    let key = key.trim();
    if key.is_empty() {
        return Err("empty label key".into());
    }
    if key.chars().any(|c| c.is_whitespace() || "=!()".contains(c)) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(match key.split_once(':') {
        Some(("any", rest)) => (None, rest.to_owned()),
        Some((source, rest)) if !source.is_empty() => (Some(source.to_owned()), rest.to_owned()),
        _ => (None, key.to_owned()),
    })
}

fn parse_set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("expected a parenthesised value list, got {text:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

fn parse_requirement(text: &str) -> Result<Requirement, String> {
    let text = text.trim();
    let (key, op) = if let Some(key) = text.strip_prefix('!') {
        (key, Op::NotExists)
    } else if let Some((key, value)) = text.split_once("!=") {
        (key, Op::NotIn(vec![value.trim().to_owned()]))
    } else if let Some((key, value)) = text.split_once("==").or_else(|| text.split_once('=')) {
        (key, Op::In(vec![value.trim().to_owned()]))
    } else if let Some((key, set)) = text.split_once(" notin ") {
        (key, Op::NotIn(parse_set(set)?))
    } else if let Some((key, set)) = text.split_once(" in ") {
        (key, Op::In(parse_set(set)?))
    } else {
        (text, Op::Exists)
    };
    let (source, key) = parse_key(key)?;
    let cidr = if source.as_deref() == Some("cidr") {
        Prefix::parse_label_key(&key)
    } else {
        None
    };
    Ok(Requirement { source, key, cidr, op })
}

impl Selector {
    pub fn parse(field: &'static str, text: &str) -> Result<Self, FilterError> {
        if text.trim().is_empty() {
            return Err(FilterError::invalid(field, text, "empty label selector"));
        }
        let requirements = split_top_level(text)
            .into_iter()
            .map(parse_requirement)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| FilterError::invalid(field, text, reason))?;
        Ok(Self { requirements })
    }

    pub fn matches(&self, labels: &[String]) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    fn label_matches_key(&self, label: &Label<'_>) -> bool {
        if self.source.as_deref().is_some_and(|s| s != label.source) {
            return false;
        }
        if let Some(prefix) = &self.cidr {
            return Prefix::parse_label_key(label.key).is_some_and(|inner| prefix.contains_prefix(&inner));
        }
        self.key == label.key
    }

    fn matches(&self, labels: &[String]) -> bool {
        let mut with_key = labels
            .iter()
            .map(|l| parse_label(l))
            .filter(|l| self.label_matches_key(l));
        match &self.op {
            Op::Exists => with_key.next().is_some(),
            Op::NotExists => with_key.next().is_none(),
            Op::In(values) => with_key.any(|l| values.iter().any(|v| v == l.value)),
            Op::NotIn(values) => with_key.all(|l| values.iter().all(|v| v != l.value)),
        }
    }
}

/// Parses a CIDR label key (`10.0.0.0/8`, or IPv6 with `-` for `:`).
impl Prefix {
    fn parse_label_key(key: &str) -> Option<Prefix> {
        let (addr, len) = key.split_once('/')?;
        let addr: IpAddr = addr.replace('-', ":").parse().ok()?;
        Prefix::new(addr, len.parse().ok()?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn labels(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn source_prefixes_and_operators() {
        let flow = labels(&["k8s:app=web", "k8s:tier=front", "reserved:host"]);
        let sel = |s: &str| Selector::parse("source_label", s).unwrap();
        assert!(sel("app=web").matches(&flow));
        assert!(sel("k8s:app=web").matches(&flow));
        assert!(!sel("container:app=web").matches(&flow));
        assert!(sel("app in (web, api),tier").matches(&flow));
        assert!(!sel("app notin (web)").matches(&flow));
        assert!(sel("app!=api").matches(&flow));
        assert!(sel("!missing").matches(&flow));
        assert!(sel("reserved:host").matches(&flow));
        assert!(!sel("app==api").matches(&flow));
        assert!(Selector::parse("source_label", "app in web").is_err());
        assert!(Selector::parse("source_label", "").is_err());
    }

    #[test]
    fn cidr_labels_match_by_containment() {
        let flow = labels(&["cidr:10.1.0.0/16"]);
        assert!(
            Selector::parse("destination_label", "cidr:10.0.0.0/8")
                .unwrap()
                .matches(&flow)
        );
        assert!(
            !Selector::parse("destination_label", "cidr:192.168.0.0/16")
                .unwrap()
                .matches(&flow)
        );
    }
}
