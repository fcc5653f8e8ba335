//! The contract between Sightline's eBPF programs and the agent.
//!
//! Every record the kernel side writes into a map or ring buffer is declared here
//! once, `#[repr(C)]` with explicit padding, so both sides agree on its layout
//! byte for byte. The crate is `no_std` and dependency-free so the eBPF programs
//! (built for `bpfel-unknown-none`) and the userspace agent compile the same source.

#![no_std]

/// Version of the event layout; bumped whenever a shared struct changes shape, so an
/// agent never reads records written by programs built from another layout.
pub const EVENT_LAYOUT_VERSION: u32 = 1;
