//! Flags from a YAML or TOML file, with the precedence operators expect:
//! command line > environment > config file > built-in default.
//!
//! Keys are the long flag names (`cluster-name: prod`, as in hubble-relay's
//! `config.yaml`; `cluster_name` works too). The file's values become arguments placed
//! before the real ones, so clap validates them exactly like typed flags; a key already
//! given on the command line or in the environment is skipped whole.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, Command};
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
/// Why a `--config` file could not be applied; each names the file and, where known, the key.
pub enum ConfigFileError {
    #[error("reading config file {path}: {source}")]
    /// The file could not be read.
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    #[error("config file {path}: {reason}")]
    /// The file is not valid YAML or TOML.
    Parse {
        /// The config file.
        path: PathBuf,
        /// The parser's message, with its position.
        reason: String,
    },
    #[error("config file {path}: top level must be a mapping of flag names to values")]
    /// The document is a scalar or a list where a map of flags was expected.
    NotAMapping {
        /// The config file.
        path: PathBuf,
    },
    #[error("config file {path}: unknown key {key:?} (keys are the long flag names)")]
    /// A key that is no long flag of this binary (a typo, or a flag of another binary).
    UnknownKey {
        /// The config file.
        path: PathBuf,
        /// The key as written.
        key: String,
    },
    #[error("config file {path}: key {key:?} must be a string, number, boolean or list of those")]
    /// A value that cannot stand for flag arguments (a map, or a list holding one).
    BadValue {
        /// The config file.
        path: PathBuf,
        /// The key whose value was refused.
        key: String,
    },
}

/// The flag values one config value stands for: a scalar, or a list of scalars.
fn flag_values(value: Value) -> Option<Vec<String>> {
    let scalar = |value: Value| match value {
        Value::String(s) => Some(s),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.into_iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

/// The file's keys and values. YAML and TOML both land in one JSON-shaped map.
fn entries(path: &Path) -> Result<Map<String, Value>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_entries(path, &text)
}

/// The keys and values of a config file's `text`; `path` picks the format (TOML for
/// `.toml`) and names the file in errors. For text that did not come from the file
/// itself, e.g. a ConfigMap's key read through the API.
pub fn parse_entries(path: &Path, text: &str) -> Result<Map<String, Value>, ConfigFileError> {
    let parse_error = |reason: String| ConfigFileError::Parse {
        path: path.to_owned(),
        reason,
    };
    let document: Value = if path.extension().is_some_and(|e| e == "toml") {
        toml::from_str(text).map_err(|e| parse_error(e.to_string()))?
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| parse_error(e.to_string()))?
    };
    match document {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err(ConfigFileError::NotAMapping { path: path.to_owned() }),
    }
}

/// Returns `args` with the flags of the file at `path` (YAML, or TOML for `.toml`)
/// inserted after the program name.
pub fn merge(command: &Command, path: &Path, args: Vec<OsString>) -> Result<Vec<OsString>, ConfigFileError> {
    merge_entries(command, path, entries(path)?, args)
}

/// [`merge`] with the file's content given as `text` (`path` as in [`parse_entries`]).
pub fn merge_text(
    command: &Command,
    path: &Path,
    text: &str,
    args: Vec<OsString>,
) -> Result<Vec<OsString>, ConfigFileError> {
    merge_entries(command, path, parse_entries(path, text)?, args)
}

fn merge_entries(
    command: &Command,
    path: &Path,
    entries: Map<String, Value>,
    args: Vec<OsString>,
) -> Result<Vec<OsString>, ConfigFileError> {
    // Flags already given on the command line or in the environment keep their
    // value whole: a list on the command line replaces the file's list rather
    // than adding to it.
    let given = command.clone().ignore_errors(true).try_get_matches_from(&args).ok();
    let is_given = |arg: &Arg| {
        let source = given.as_ref().and_then(|m| m.value_source(arg.get_id().as_str()));
        matches!(source, Some(ValueSource::CommandLine | ValueSource::EnvVariable))
            || arg.get_env().is_some_and(|env| std::env::var_os(env).is_some())
    };
    let mut injected = Vec::new();
    for (key, value) in entries {
        let flag = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(flag.as_str()) && flag != "config")
            .ok_or_else(|| ConfigFileError::UnknownKey {
                path: path.to_owned(),
                key: key.clone(),
            })?;
        if is_given(arg) {
            continue;
        }
        let arguments = flag_values(value).and_then(|values| flag_arguments(arg, &flag, values));
        injected.extend(arguments.ok_or(ConfigFileError::BadValue {
            path: path.to_owned(),
            key,
        })?);
    }
    let mut args = args.into_iter();
    Ok(args.next().into_iter().chain(injected).chain(args).collect())
}

/// The command-line arguments that give `arg` the file's `values`.
fn flag_arguments(arg: &Arg, flag: &str, values: Vec<String>) -> Option<Vec<OsString>> {
    if !arg.get_action().takes_values() {
        return match values.as_slice() {
            [v] if v == "true" => Some(vec![OsString::from(format!("--{flag}"))]),
            [v] if v == "false" => Some(Vec::new()),
            _ => None,
        };
    }
    match arg.get_value_delimiter() {
        // One occurrence holding the whole list, as an operator would type it.
        Some(delimiter) => Some(vec![OsString::from(format!(
            "--{flag}={}",
            values.join(&delimiter.to_string())
        ))]),
        None => Some(
            values
                .into_iter()
                .map(|value| OsString::from(format!("--{flag}={value}")))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::{ArgAction, CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    #[command(args_override_self = true)]
    struct Flags {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long, default_value = "default")]
        cluster_name: String,
        #[arg(long, value_delimiter = ',')]
        peers: Vec<String>,
        #[arg(long, action = ArgAction::SetTrue)]
        disable_server_tls: bool,
        #[arg(long, default_value_t = 4095)]
        capacity: usize,
    }

    fn load(file: &Path, extra: &[&str]) -> Result<Flags, String> {
        let argv: Vec<OsString> = ["prog"].iter().chain(extra).map(OsString::from).collect();
        let merged = merge(&Flags::command(), file, argv).map_err(|e| e.to_string())?;
        Flags::try_parse_from(merged).map_err(|e| e.to_string())
    }

    #[test]
    fn yaml_and_toml_values_yield_to_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("c.yaml");
        std::fs::write(
            &yaml,
            "cluster-name: prod\ncapacity: 1023\npeers: [a=1.2.3.4:4244, b=5.6.7.8:4244]\ndisable_server_tls: true\n",
        )
        .unwrap();
        let flags = load(&yaml, &["--cluster-name", "cli"]).unwrap();
        assert_eq!(flags.cluster_name, "cli");
        assert_eq!(flags.capacity, 1023);
        assert_eq!(flags.peers, ["a=1.2.3.4:4244", "b=5.6.7.8:4244"]);
        assert!(flags.disable_server_tls);
        assert_eq!(load(&yaml, &["--peers", "c=9.9.9.9:1"]).unwrap().peers, ["c=9.9.9.9:1"]);

        let toml = dir.path().join("c.toml");
        std::fs::write(
            &toml,
            "cluster_name = \"eu\"\ndisable-server-tls = false\npeers = [\"x=1:2\"]\n",
        )
        .unwrap();
        let flags = load(&toml, &[]).unwrap();
        assert_eq!((flags.cluster_name.as_str(), flags.disable_server_tls), ("eu", false));
        assert_eq!(flags.peers, ["x=1:2"]);
    }

    #[test]
    fn bad_files_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.yaml");
        let shown = file.display().to_string();
        for (text, expected) in [
            ("no-such-flag: 1\n", "unknown key \"no-such-flag\""),
            ("config: other.yaml\n", "unknown key \"config\""),
            ("cluster-name: {nested: 1}\n", "key \"cluster-name\" must be"),
            (
                "disable-server-tls: [true, false]\n",
                "key \"disable-server-tls\" must be",
            ),
            ("- just\n- a list\n", "top level must be a mapping"),
            ("cluster-name: [unclosed\n", "config file"),
        ] {
            std::fs::write(&file, text).unwrap();
            let error = load(&file, &[]).unwrap_err();
            assert!(error.contains(&shown) && error.contains(expected), "{text:?}: {error}");
        }
        let missing = dir.path().join("missing.yaml");
        assert!(load(&missing, &[]).unwrap_err().starts_with("reading config file"));
    }
}
