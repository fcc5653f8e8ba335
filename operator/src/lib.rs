//! The Sightline operator: reconciles the `SightlineConfig` custom resource into
//! agent and relay configuration and the TLS material that secures them. The
//! decisions are pure functions over the resource, the cluster's objects and a
//! time; [`controller`] only reads and writes what they decide.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod controller;
pub mod crd;
pub mod crdgen;
pub mod http;
pub mod render;
pub mod tls;
pub mod validate;
