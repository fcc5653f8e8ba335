//! End-to-end harness.
//!
//! Builds simulated clusters on one Linux host: each node and pod is a network
//! namespace joined by veth pairs and bridges, with guards that tear everything down
//! even when a test panics. Tests and the README demo run real agents and a relay
//! against real traffic between these namespaces.
//!
//! A [`Node`] is a namespace holding a bridge; a [`Pod`] is a namespace whose `eth0`
//! is a veth to that bridge. Names are unique per process and call, so tests can run
//! in parallel; every pod also gets its own subnet (see [`Node::new`]).

#![warn(missing_docs)]
#![warn(unreachable_pub)]

pub mod cluster;
pub mod demo;
pub mod dns_server;
pub mod netns;
pub(crate) mod observe_format;

pub use cluster::{Node, Pod};
pub use dns_server::DnsServer;
pub use netns::{Netns, unique_name};

/// Why building or driving a simulated cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// An `ip` (or other) command exited non-zero, or printed what could not be parsed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line as run.
        command: String,
        /// What it printed on stderr (or the output that could not be parsed).
        stderr: String,
    },
    /// Spawning a command or a socket operation failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Code run with [`Netns::run`] panicked; names the namespace.
    #[error("a thread inside network namespace {0} panicked")]
    ThreadPanicked(String),
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, HarnessError>;
