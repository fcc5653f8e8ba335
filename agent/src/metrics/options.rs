//! Hubble's `--metrics` list syntax: whitespace-separated `name[:key=value;key;...]`.
//! Options split on `;`, key from value on the first `=`; a bare key has the value "".
//! Context values keep their own `|` / `,` syntax and are parsed in `context`.

use super::MetricsError;

/// One handler and its options, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    /// The handler (`flow`, `drop`, `dns`, `httpV2`, ...), case as written.
    pub name: String,
    /// `key=value` pairs in the order given; a bare key has the value `""`.
    pub options: Vec<(String, String)>,
}

impl MetricSpec {
    /// The value of `key` (compared without case, as Hubble does).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses one `name:options` item.
pub fn parse_item(item: &str) -> Result<MetricSpec, MetricsError> {
    let (name, options) = item.split_once(':').unwrap_or((item, ""));
    if name.is_empty() {
        return Err(MetricsError::Syntax {
            item: item.to_owned(),
            reason: "the metric name is empty".into(),
        });
    }
    let options = options
        .split(';')
        .filter(|option| !option.is_empty())
        .map(|option| match option.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (option.to_owned(), String::new()),
        })
        .collect();
    Ok(MetricSpec {
        name: name.to_owned(),
        options,
    })
}

/// Parses every item of every flag value (each value may hold several, separated
/// by whitespace, as Helm passes them). A handler named twice is an error: Hubble
/// keeps the last one silently, which hides typos in long lists.
pub fn parse_list<S: AsRef<str>>(values: &[S]) -> Result<Vec<MetricSpec>, MetricsError> {
    let mut specs: Vec<MetricSpec> = Vec::new();
    for item in values.iter().flat_map(|value| value.as_ref().split_whitespace()) {
        let spec = parse_item(item)?;
        if specs.iter().any(|seen| seen.name == spec.name) {
            return Err(MetricsError::Duplicate { name: spec.name });
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn opts(spec: &MetricSpec) -> Vec<(&str, &str)> {
        spec.options.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    #[test]
    fn the_issue_example_parses_as_hubble_does() {
        let specs = parse_list(&[
            "dns:query;ignoreAAAA drop:sourceContext=pod;destinationContext=pod tcp flow port-distribution icmp \
             flows-to-world:any-drop;port httpV2:exemplars=true;labelsContext=source_namespace,destination_namespace",
        ])
        .unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dns",
                "drop",
                "tcp",
                "flow",
                "port-distribution",
                "icmp",
                "flows-to-world",
                "httpV2"
            ]
        );
        assert_eq!(opts(&specs[0]), [("query", ""), ("ignoreAAAA", "")]);
        assert_eq!(
            opts(&specs[1]),
            [("sourceContext", "pod"), ("destinationContext", "pod")]
        );
        assert!(specs[2].options.is_empty());
        assert_eq!(opts(&specs[6]), [("any-drop", ""), ("port", "")]);
        assert_eq!(
            opts(&specs[7]),
            [
                ("exemplars", "true"),
                ("labelsContext", "source_namespace,destination_namespace")
            ]
        );
        assert_eq!(
            specs[7].option("LABELSCONTEXT"),
            Some("source_namespace,destination_namespace")
        );
    }

    #[test]
    fn values_keep_everything_after_the_first_equals_sign_and_empty_options_are_skipped() {
        let spec = parse_item("flow:sourceContext=pod|ip;;x=a=b").unwrap();
        assert_eq!(opts(&spec), [("sourceContext", "pod|ip"), ("x", "a=b")]);
    }

    #[test]
    fn several_flag_values_are_joined_and_a_repeated_name_is_refused() {
        let specs = parse_list(&["flow", "drop  tcp"]).unwrap();
        assert_eq!(specs.len(), 3);
        let err = parse_list(&["flow drop flow:sourceContext=pod"]).unwrap_err();
        assert!(err.to_string().contains("\"flow\""), "{err}");
        assert!(parse_list(&[":sourceContext=pod"]).is_err());
    }
}
