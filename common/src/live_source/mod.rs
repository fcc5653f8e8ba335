//! Where a binary's configuration comes from while it runs: the operator's
//! ConfigMap watched through the API ([`config_map`]) and the `--config` file
//! polled by content ([`config_file`]). Both deliver a [`ConfigText`]; what the
//! text means is the binary's business.

pub mod config_file;
pub mod config_map;

use std::path::{Path, PathBuf};

/// The operator's `generation` key: a ConfigMap key, and a file next to
/// `--config` when that ConfigMap is mounted.
pub const GENERATION_KEY: &str = "generation";

/// Where a pod finds its own namespace when `POD_NAMESPACE` is not set.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// One version of a configuration text as a source delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigText {
    /// Where the text comes from, for messages (a file path, or
    /// `configmap ns/name/config.yaml`); its extension picks YAML or TOML.
    pub origin: PathBuf,
    /// The `--config` file's text: keys are the long flag names.
    pub config: String,
    /// The operator's `generation` the text was rendered from, when it says.
    pub generation: Option<i64>,
}

/// A source's version that cannot be taken as it is.
#[derive(Debug, thiserror::Error)]
pub enum LiveSourceError {
    /// The `generation` value is not an integer.
    #[error("{origin}: generation {value:?} is not an integer")]
    Generation {
        /// The file or ConfigMap key that holds it.
        origin: PathBuf,
        /// The value as found (trimmed).
        value: String,
    },
    /// The ConfigMap lacks the key the configuration lives under.
    #[error("{origin}: no key {key:?}")]
    MissingKey {
        /// The key's place in the ConfigMap.
        origin: PathBuf,
        /// The missing key.
        key: String,
    },
    /// The configuration file cannot be read (yet): retried.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Parses the operator's `generation` value, naming where it came from.
pub fn parse_generation(origin: &Path, text: &str) -> Result<i64, LiveSourceError> {
    text.trim().parse().map_err(|_| LiveSourceError::Generation {
        origin: origin.to_owned(),
        value: text.trim().to_owned(),
    })
}

/// The namespace a `--config-map` lives in: `explicit` when set, else the pod's
/// own (`$POD_NAMESPACE`, else the service account's), else `default`.
pub fn pod_namespace(explicit: Option<&str>) -> String {
    explicit
        .filter(|ns| !ns.is_empty())
        .map(str::to_owned)
        .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|ns| !ns.is_empty()))
        .or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .ok()
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty())
        })
        .unwrap_or_else(|| "default".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_is_an_integer_or_refused_naming_its_origin() {
        let origin = Path::new("configmap sightline/relay/generation");
        assert_eq!(parse_generation(origin, " 12\n").ok(), Some(12));
        let error = parse_generation(origin, "v12\n").err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("configmap sightline/relay/generation: generation \"v12\" is not an integer")
        );
    }

    #[test]
    fn an_explicit_namespace_wins() {
        assert_eq!(pod_namespace(Some("monitoring")), "monitoring");
    }
}
