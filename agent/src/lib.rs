//! The Sightline node agent.
//!
//! One agent runs per node (a DaemonSet). It loads the eBPF programs from `bpf/`,
//! drains their ring buffer, decodes records into Hubble `flow.Flow`s, enriches
//! them with Kubernetes metadata, keeps them in the observer ring and serves the
//! Hubble API (`observer.Observer`, `peer.Peer`) on TCP `:4244` and a unix socket,
//! with Prometheus metrics on `:9965`. See `docs/architecture.md` for the stages.

#![warn(missing_docs, unreachable_pub)]

pub mod app;
pub mod cli;
pub mod datapath;
pub mod enrich;
pub mod event;
pub mod export;
pub mod flow_record;
pub mod k8s;
pub mod l7;
pub mod live;
pub mod metrics;
pub mod observer;
pub mod peer;
pub(crate) mod server;
pub mod synthetic;
