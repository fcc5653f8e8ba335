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

#![warn(unreachable_pub)]

pub mod cluster;
pub mod demo;
pub mod dns_server;
pub mod netns;
pub mod observe_format;

pub use cluster::{Node, Pod};
pub use dns_server::DnsServer;
pub use netns::{Netns, unique_name};

#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("a thread inside network namespace {0} panicked")]
    ThreadPanicked(String),
}

pub type Result<T> = std::result::Result<T, HarnessError>;
