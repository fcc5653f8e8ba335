//! Enrichment: Kubernetes metadata on every flow.
//!
//! Watchers and the manifest loader (`crate::k8s`) describe objects as the small
//! structs in `model`; the `Index` keeps them and an IP → endpoint map; the `Enricher`
//! is the pipeline stage that looks each flow's addresses up. See `docs/enrichment.md`.

mod config;
pub(crate) mod dns;
pub(crate) mod enricher;
pub(crate) mod events;
pub(crate) mod identity;
pub mod index;
pub mod model;
pub(crate) mod peers;
mod state;
pub(crate) mod translation;
mod workload;

pub use config::IndexConfig;
pub use enricher::Enricher;
pub use index::Index;
pub use model::{Change, Kind, Object};
pub use peers::{NodePeer, NodePeers};
