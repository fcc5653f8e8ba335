//! How every binary behaves at its edges, the same way: `--help` and `--version`
//! on stdout with exit 0, a usage error as clap prints it with exit 2, and a
//! start-up or run-time error as one `Error: …` line on stderr with exit 1
//! (plus a backtrace only when `RUST_BACKTRACE` asks for one).

use std::process::ExitCode;

/// Exit code of a usage error (clap's).
pub const USAGE_EXIT: u8 = 2;
/// Exit code of an error after the command line was understood.
pub const FAILURE_EXIT: u8 = 1;

/// An error found while reading the command line, the environment or a config
/// file. Errors that wrap clap's transparently hide it from `source()`, so each
/// says where its clap error is.
pub trait UsageError: std::error::Error + 'static {
    /// Itself as a plain error, for walking its sources.
    fn as_error(&self) -> &(dyn std::error::Error + 'static);

    /// The clap error inside, if this is one (including `--help` and `--version`).
    fn clap(&self) -> Option<&clap::Error> {
        None
    }
}

impl UsageError for clap::Error {
    fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        self
    }

    fn clap(&self) -> Option<&clap::Error> {
        Some(self)
    }
}

impl UsageError for crate::logging::LogError {
    fn as_error(&self) -> &(dyn std::error::Error + 'static) {
        self
    }
}

/// Ends the process for a command-line problem: clap's own errors (including
/// `--help` and `--version`) exit as clap decides; anything else found while
/// reading flags (a config file, a value clap could not check) is a usage error.
pub fn exit_usage(error: &dyn UsageError) -> ! {
    if let Some(clap) = error.clap() {
        clap.exit()
    }
    eprintln!("Error: {}", chain(error.as_error()));
    std::process::exit(i32::from(USAGE_EXIT))
}

/// What `main` returns: nothing on success, one line on failure.
pub fn report(result: Result<(), anyhow::Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            if backtrace_requested() {
                eprintln!("{}", error.backtrace());
            }
            ExitCode::from(FAILURE_EXIT)
        }
    }
}

fn backtrace_requested() -> bool {
    ["RUST_BACKTRACE", "RUST_LIB_BACKTRACE"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|value| !value.is_empty() && value != "0"))
}

/// The error and its sources on one line, `outer: inner: innermost`.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_is_one_line_without_repeats() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&error), "outer: inner");
        #[derive(Debug, thiserror::Error)]
        #[error("wrapping: inner")]
        struct Repeats(#[source] std::io::Error);
        assert_eq!(chain(&Repeats(std::io::Error::other("inner"))), "wrapping: inner");
    }
}
