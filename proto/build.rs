//! Compiles `proto/**.proto` without a system `protoc`: protox parses them into a
//! descriptor set, which drives prost/tonic code generation, pbjson's protojson
//! serde impls, and the reflection service (embedded as bytes).

use std::{env, fs, path::PathBuf};

use prost::Message;

const FILES: [&str; 4] = [
    "flow/flow.proto",
    "relay/relay.proto",
    "observer/observer.proto",
    "peer/peer.proto",
];

/// Sub-messages of `flow.Flow` kept behind a pointer (see `main`).
const BOXED_FLOW_FIELDS: [&str; 11] = [
    "source",
    "destination",
    "l7",
    "tunnel",
    "source_service",
    "destination_service",
    "extensions",
    "file",
    "trace_context",
    "emitter",
    "ethernet",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    for file in FILES {
        println!("cargo:rerun-if-changed={file}");
    }

    let descriptors = protox::Compiler::new(["."])?
        .include_imports(true)
        .include_source_info(false)
        .open_files(FILES)?
        .file_descriptor_set();
    let encoded = descriptors.encode_to_vec();
    fs::write(out_dir.join("hubble_descriptor.bin"), &encoded)?;

    let mut config = tonic_prost_build::configure().compile_well_known_types(true);
    // A `flow.Flow` with every sub-message inline is 1.4 KB, most of it fields a
    // datapath flow never sets. Boxing those halves what each ring slot allocates
    // and writes, and keeps the allocation in the allocator's per-thread cache.
    for field in BOXED_FLOW_FIELDS {
        config = config.boxed(format!(".flow.Flow.{field}"));
    }
    config
        // protojson prints timestamps with `Z`; pbjson-types does not (see timestamp.rs).
        .extern_path(".google.protobuf.Timestamp", "crate::Timestamp")
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptors)?;

    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .preserve_proto_field_names()
        .build(&[".flow", ".observer", ".peer", ".relay"])?;
    Ok(())
}
