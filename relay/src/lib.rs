//! The Sightline relay.
//!
//! One relay serves the Hubble API for the whole cluster on `:4245`. It learns the
//! agents from `peer.Peer/Notify` (or a static list), keeps one mutually
//! authenticated channel per agent, fans each request out to all of them and merges
//! the answers by timestamp, so the `hubble` CLI and Hubble UI see one ordered
//! stream with node status events. Module by module: [`discovery`] → [`pool`] (via
//! [`dial`], [`tls`]) → [`fanout`] (via [`merge`], [`sort_buffer`]) → [`server`];
//! [`app`] wires them together. Under h2, agent connections are read in batches
//! (`low_water`: `SO_RCVLOWAT`, at most 4 ms late) and runs of their DATA frames
//! joined (`coalesce`), so a Go agent's one frame per flow costs about what a
//! batched feed does.

// One `setsockopt` in `low_water` is the crate's only unsafe code.
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod address;
pub mod app;
mod coalesce;
pub mod config;
pub mod dial;
pub mod discovery;
pub mod fanout;
pub mod live;
mod low_water;
pub mod merge;
pub mod metrics;
pub mod pool;
pub mod raw;
pub mod raw_client;
pub mod router;
pub mod server;
pub mod sort_buffer;

pub use sightline_common::{config_file, tls};
