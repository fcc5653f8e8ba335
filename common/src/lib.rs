//! What the agent, the relay and the operator share, one concern per module: TLS
//! material that follows its files, flags read from a config file, Hubble's
//! naming rules, durations, backoff, shutdown, logging, how binaries exit,
//! where a live configuration comes from and how a component reports the
//! generation it runs.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod backoff;
pub mod config_file;
pub mod duration;
pub mod edge;
pub mod generation_lease;
pub mod grpc_metrics;
pub mod listen;
pub mod live_source;
pub mod logging;
pub mod metrics_server;
pub mod names;
pub mod net;
pub mod shutdown;
pub mod tls;
