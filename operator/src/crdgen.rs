//! The CRD as committed YAML, generated from the Rust types.

use kube::CustomResourceExt;

use crate::crd::SightlineConfig;

/// Where the chart keeps the CRD, relative to the workspace root.
pub const CRD_PATH: &str = "charts/sightline/crds/sightlineconfigs.sightline.dev.yaml";

/// The CRD YAML as it is committed.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    let body = serde_yaml_ng::to_string(&SightlineConfig::crd())?;
    Ok(format!(
        "# Generated from operator/src/crd by `UPDATE_CRDS=1 cargo test -p sightline-operator --test crd`.\n# Do not edit by hand.\n{body}"
    ))
}
