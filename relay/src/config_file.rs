//! Flags from a YAML file, with the precedence operators expect:
//! command line > environment > config file > built-in default.
//!
//! Keys are the long flag names (`cluster-name: prod`), as in hubble-relay's
//! `config.yaml`. The file's values are turned into arguments placed before the real
//! ones, so clap validates them exactly like typed flags; a key whose environment
//! variable is set is skipped, so the environment wins over the file.

use std::ffi::OsString;
use std::path::Path;

use clap::Command;
use serde_yaml_ng::Value;

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("reading config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: String, source: serde_yaml_ng::Error },
    #[error("config file {path}: top level must be a mapping of flag names to values")]
    NotAMapping { path: String },
    #[error("config file {path}: unknown key {key:?} (keys are the long flag names)")]
    UnknownKey { path: String, key: String },
    #[error("config file {path}: key {key:?} needs a scalar or a list of scalars")]
    BadValue { path: String, key: String },
}

/// Returns `args` with the flags of the YAML file at `path` inserted after the program name.
pub fn merge(command: &Command, path: &Path, args: Vec<OsString>) -> Result<Vec<OsString>, ConfigFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: shown.clone(),
        source,
    })?;
    let document: Value = serde_yaml_ng::from_str(&text).map_err(|source| ConfigFileError::Parse {
        path: shown.clone(),
        source,
    })?;
    let mapping = match document {
        Value::Mapping(mapping) => mapping,
        Value::Null => Default::default(),
        _ => return Err(ConfigFileError::NotAMapping { path: shown }),
    };

    let mut injected = Vec::new();
    for (key, value) in mapping {
        let key = key
            .as_str()
            .map(str::to_owned)
            .ok_or(ConfigFileError::NotAMapping { path: shown.clone() })?;
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(key.as_str()))
            .ok_or_else(|| ConfigFileError::UnknownKey {
                path: shown.clone(),
                key: key.clone(),
            })?;
        if arg.get_env().is_some_and(|env| std::env::var_os(env).is_some()) {
            continue;
        }
        let bad = || ConfigFileError::BadValue {
            path: shown.clone(),
            key: key.clone(),
        };
        let values = match value {
            Value::Sequence(items) => items
                .into_iter()
                .map(|v| scalar(v).ok_or_else(bad))
                .collect::<Result<_, _>>()?,
            other => vec![scalar(other).ok_or_else(bad)?],
        };
        let takes_value = arg.get_action().takes_values();
        for value in values {
            if takes_value {
                injected.push(OsString::from(format!("--{key}={value}")));
            } else if value == "true" {
                injected.push(OsString::from(format!("--{key}")));
            }
        }
    }
    let mut args = args.into_iter();
    Ok(args.next().into_iter().chain(injected).chain(args).collect())
}

fn scalar(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
