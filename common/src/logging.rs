//! Log set-up shared by every binary: `--log-level` and `--log-format`, `RUST_LOG`
//! as the fallback, logs on stderr, colour only on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log shippers.
    Json,
}

/// The log flags every binary carries.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`) or `RUST_LOG`-style
    /// directives (`info,sightline_agent=debug`) [default: $RUST_LOG, else info].
    #[arg(long, env = "SIGHTLINE_LOG_LEVEL", global = true)]
    pub log_level: Option<String>,

    /// Log line format.
    #[arg(long, env = "SIGHTLINE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// A `--log-level` that is neither a level nor valid directives.
#[derive(Debug, thiserror::Error)]
#[error("invalid --log-level {value:?}: {reason}")]
pub struct LogError {
    value: String,
    reason: String,
}

impl LogArgs {
    /// The filter in force: the flag (or `SIGHTLINE_LOG_LEVEL`), else `RUST_LOG`, else `info`.
    pub fn filter(&self) -> Result<EnvFilter, LogError> {
        let directives = match &self.log_level {
            Some(level) => level.trim().to_owned(),
            None => std::env::var("RUST_LOG").unwrap_or_default(),
        };
        let directives = if directives.is_empty() {
            "info".to_owned()
        } else {
            directives
        };
        EnvFilter::builder().parse(&directives).map_err(|error| LogError {
            value: directives,
            reason: error.to_string(),
        })
    }

    /// Installs the global subscriber. Call once, before anything logs.
    pub fn init(&self) -> Result<(), LogError> {
        let filter = self.filter()?;
        let ansi = std::io::stderr().is_terminal();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(ansi);
        // A second init (tests that start a binary's app twice) keeps the first one.
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn levels_and_directives_parse_and_garbage_is_named() {
        let args = |level: &str| LogArgs {
            log_level: Some(level.into()),
            log_format: LogFormat::Text,
        };
        assert!(args("debug").filter().is_ok());
        assert!(args("info,sightline_agent=trace").filter().is_ok());
        let error = args("info,foo=loud").filter().unwrap_err().to_string();
        assert!(error.contains("info,foo=loud"), "{error}");
    }
}
