//! Generates the `flow` package's messages from sightline-proto's own `flow.proto`
//! (protox parses it: no system `protoc`), so the fuzzed parsers build against the
//! same message definitions as the agent.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = "flow/flow.proto";
    println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    let descriptors = protox::Compiler::new([&proto_root])?
        .include_imports(true)
        .include_source_info(false)
        .open_files([file])?
        .file_descriptor_set();
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
