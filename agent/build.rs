//! Builds the eBPF programs in `bpf/programs` (their own workspace, target bpfel) with
//! aya-build on the nightly named in `bpf/nightly-toolchain`, and embeds them.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let bpf_dir = manifest_dir.join("../bpf");
    let toolchain_file = bpf_dir.join("nightly-toolchain");
    println!("cargo:rerun-if-changed={}", toolchain_file.display());
    println!("cargo:rerun-if-changed={}", bpf_dir.join("common/src").display());
    let toolchain = std::fs::read_to_string(&toolchain_file)?;
    let toolchain = toolchain.trim();
    let programs_dir = bpf_dir.join("programs");
    // aya-build runs `cargo build --package` in the current directory; the programs crate
    // is excluded from the userspace workspace and is the root of its own.
    std::env::set_current_dir(&programs_dir)?;
    // aya-build forwards the inner cargo's progress lines as build warnings; keep only real ones.
    // SAFETY: the build script is single-threaded here.
    unsafe { std::env::set_var("CARGO_TERM_QUIET", "true") };
    let package = aya_build::Package {
        name: "sightline-bpf-programs",
        root_dir: programs_dir
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", programs_dir.display()))?,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::Custom(toolchain))
}
