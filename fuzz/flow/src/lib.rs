//! `sightline_proto::flow` for the fuzz crate: the fuzz targets name this crate
//! `sightline_proto` (see `../Cargo.toml`), so the agent's parser files compile here
//! unchanged.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// Package `flow`: the flow record and its L7 messages.
pub mod flow {
    include!(concat!(env!("OUT_DIR"), "/flow.rs"));
}
