//! The Sightline operator.
//!
//! A Deployment that reconciles Sightline's custom resources into running
//! configuration: agent and relay settings, and the TLS material that secures them
//! (a cluster CA, agent server certificates, relay client certificates), rotated
//! before they expire.
