//! End-to-end harness.
//!
//! Builds simulated clusters on one Linux host: each node and pod is a network
//! namespace joined by veth pairs and bridges, with guards that tear everything down
//! even when a test panics. Tests and the README demo run real agents and a relay
//! against real traffic between these namespaces.
