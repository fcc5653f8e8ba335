//! The Sightline relay.
//!
//! One relay serves the Hubble API for the whole cluster on `:4245`. It learns the
//! agents from `peer.Peer/Notify`, keeps one mTLS channel per agent, fans each
//! `GetFlows` request out to all of them and merges the answers by timestamp, so the
//! `hubble` CLI and Hubble UI see one ordered stream with node status events.
