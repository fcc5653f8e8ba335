//! The CRD as committed YAML, generated from the Rust types.

use kube::CustomResourceExt;

use crate::crd::SightlineConfig;

/// Where the chart keeps the CRD, relative to the workspace root.
pub const CRD_PATH: &str = "charts/sightline/crds/sightlineconfigs.sightline.dev.yaml";

/// Plain scalars that YAML 1.2 reads as strings but YAML 1.1 reads as booleans.
/// `kubectl` and Helm convert YAML to JSON with a YAML 1.1 reader, so an unquoted
/// `off` in an enum would reach the API server as `false`.
pub const YAML_1_1_BOOLEANS: [&str; 16] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF",
];

/// The CRD YAML as it is committed.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    let body = quote_yaml_1_1_booleans(&serde_yaml_ng::to_string(&SightlineConfig::crd())?);
    Ok(format!(
        "# Generated from operator/src/crd by `UPDATE_CRDS=1 cargo test -p sightline-operator --test crd`.\n# Do not edit by hand.\n{body}"
    ))
}

/// Single-quotes every plain scalar of [`YAML_1_1_BOOLEANS`] that stands as a
/// mapping value or a sequence item, outside block scalars (descriptions), so
/// YAML 1.1 and 1.2 readers see the same strings.
fn quote_yaml_1_1_booleans(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    // Indentation of the key that opened a block scalar; deeper lines belong to it.
    let mut block_indent: Option<usize> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(open) = block_indent {
            if line.trim().is_empty() || indent > open {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block_indent = None;
        }
        let value_start = plain_value_start(line);
        let value = &line[value_start..];
        if value_start > 0 && YAML_1_1_BOOLEANS.contains(&value) {
            out.push_str(&line[..value_start]);
            out.push('\'');
            out.push_str(value);
            out.push('\'');
        } else {
            out.push_str(line);
        }
        out.push('\n');
        if ["|", "|-", "|+", ">", ">-", ">+"].contains(&value) {
            block_indent = Some(indent);
        }
    }
    out
}

/// Where the scalar after `key: ` or `- ` begins (0 when the line has none).
fn plain_value_start(line: &str) -> usize {
    let trimmed = line.trim_start();
    let indent = line.len() - trimmed.len();
    if let Some(item) = trimmed.strip_prefix("- ") {
        return match plain_value_start(item) {
            0 => indent + 2,
            start => indent + 2 + start,
        };
    }
    match trimmed.find(": ") {
        Some(colon) if !trimmed.starts_with(['\'', '"']) => indent + colon + 2,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::quote_yaml_1_1_booleans;

    #[test]
    fn quotes_yaml_1_1_booleans_but_not_inside_descriptions() {
        let yaml = "enum:\n- observed\n- off\nmode: On\ndescription: |-\n  Either\n  - off\n  x: no\nafter: no\nname: offline\n";
        assert_eq!(
            quote_yaml_1_1_booleans(yaml),
            "enum:\n- observed\n- 'off'\nmode: 'On'\ndescription: |-\n  Either\n  - off\n  x: no\nafter: 'no'\nname: offline\n"
        );
    }
}
