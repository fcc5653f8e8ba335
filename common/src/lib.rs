//! What the agent, the relay and the operator share: TLS material that follows its
//! files, and flags read from a config file.

pub mod config_file;
pub mod net;
pub mod tls;
