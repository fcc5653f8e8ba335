//! The operator's per-node profiles: `node-profiles.yaml` maps node names to a
//! profile prefix; such a node reads `<profile>.config.yaml` (and `.metrics.yaml`)
//! instead of the base keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::LiveConfigError;

pub(crate) const NODE_PROFILES_KEY: &str = "node-profiles.yaml";

/// The profile `node` runs, from the text of `node-profiles.yaml`.
pub(crate) fn profile_of(origin: &Path, node_profiles: &str, node: &str) -> Result<Option<String>, LiveConfigError> {
    let profiles: Option<BTreeMap<String, String>> =
        serde_yaml_ng::from_str(node_profiles).map_err(|error| LiveConfigError::Profiles {
            origin: origin.to_owned(),
            reason: error.to_string(),
        })?;
    Ok(profiles.unwrap_or_default().remove(node))
}

/// The key (or file name) holding `base` for a node with `profile`.
pub(crate) fn key_for(profile: Option<&str>, base: &str) -> String {
    match profile {
        Some(profile) => format!("{profile}.{base}"),
        None => base.to_owned(),
    }
}

/// The file this node reads in place of `path` when `node-profiles.yaml` next to it
/// names the node (a ConfigMap mounted as a directory); `path` itself otherwise.
pub(crate) fn resolve_file(path: &Path, node: &str) -> Result<PathBuf, LiveConfigError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(path.to_owned());
    };
    let profiles = dir.join(NODE_PROFILES_KEY);
    let Ok(text) = std::fs::read_to_string(&profiles) else {
        return Ok(path.to_owned());
    };
    Ok(match profile_of(&profiles, &text, node)? {
        Some(profile) => dir.join(key_for(Some(&profile), name)),
        None => path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_node_named_in_the_profiles_reads_its_profile_files() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        assert_eq!(resolve_file(&config, "node-a").unwrap(), config, "no profiles file");
        std::fs::write(dir.path().join(NODE_PROFILES_KEY), "node-b: profile-0a1b2c3d4e\n").unwrap();
        assert_eq!(resolve_file(&config, "node-a").unwrap(), config);
        assert_eq!(
            resolve_file(&config, "node-b").unwrap(),
            dir.path().join("profile-0a1b2c3d4e.config.yaml")
        );
        std::fs::write(dir.path().join(NODE_PROFILES_KEY), "{}\n").unwrap();
        assert_eq!(resolve_file(&config, "node-b").unwrap(), config);
        std::fs::write(dir.path().join(NODE_PROFILES_KEY), "[not, a, map]\n").unwrap();
        let error = resolve_file(&config, "node-b").unwrap_err().to_string();
        assert!(error.contains("node-profiles.yaml"), "{error}");
    }
}
