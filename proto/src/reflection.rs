//! gRPC server reflection (v1 and v1alpha) over the Hubble descriptor set.
//!
//! `grpcurl` and older tools still speak v1alpha, newer ones v1, so both are served.

use tonic_reflection::server::{
    Builder, Error,
    v1::{ServerReflection as ReflectionV1, ServerReflectionServer as ReflectionV1Server},
    v1alpha::{ServerReflection as ReflectionV1Alpha, ServerReflectionServer as ReflectionV1AlphaServer},
};

use crate::FILE_DESCRIPTOR_SET;

/// Why a reflection service could not be built from the descriptor set.
pub use tonic_reflection::server::Error as ReflectionError;

/// Fully qualified names of the services a Hubble server registers.
pub const OBSERVER_SERVICE: &str = "observer.Observer";
pub const PEER_SERVICE: &str = "peer.Peer";

fn builder<'b>(services: &[&str]) -> Builder<'b> {
    let mut builder = Builder::configure().register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET);
    for service in services {
        builder = builder.with_service_name(*service);
    }
    builder
}

/// Reflection v1 announcing `services` (e.g. `[OBSERVER_SERVICE, PEER_SERVICE]`).
pub fn v1(services: &[&str]) -> Result<ReflectionV1Server<impl ReflectionV1>, Error> {
    builder(services).build_v1()
}

/// Reflection v1alpha announcing `services`.
pub fn v1alpha(services: &[&str]) -> Result<ReflectionV1AlphaServer<impl ReflectionV1Alpha>, Error> {
    builder(services).build_v1alpha()
}
