//! Where the workspace's binaries are and a free loopback port: for the tests that
//! run agent and relay processes.

use std::path::PathBuf;

/// A binary of the workspace, built beside the demo that Cargo builds for these tests.
pub fn binary(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sightline-demo")).with_file_name(name)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
