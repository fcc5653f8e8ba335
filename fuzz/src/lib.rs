//! The agent's parsers, compiled from their own source files in `agent/src`: the fuzz
//! targets exercise exactly that code without building the rest of the agent (eBPF
//! programs, Kubernetes client, gRPC servers) under sanitizers. Those files must
//! therefore reach nothing in the agent outside their own module (`super::` only).

#[path = "../../agent/src/l7/mod.rs"]
pub mod l7;

#[path = "../../agent/src/datapath/dns.rs"]
pub mod dns;
