//! Where scripts/images leaves the archives and what each image promises.
#![allow(dead_code)] // each test file that includes it uses a different part

pub mod containerd;

use std::path::{Path, PathBuf};
use std::process::Command;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub struct Image {
    pub component: &'static str,
    pub user: &'static str,
}

pub const IMAGES: [Image; 3] = [
    Image {
        component: "agent",
        user: "0:0",
    },
    Image {
        component: "relay",
        user: "65532:65532",
    },
    Image {
        component: "operator",
        user: "65532:65532",
    },
];

pub fn archive(component: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/images")
        .join(format!("sightline-{component}.oci.tar"));
    assert!(
        path.is_file(),
        "{} is missing: run `bash scripts/images` (scripts/test does)",
        path.display()
    );
    path
}

pub fn reference(component: &str) -> String {
    format!("localhost/sightline-{component}:{VERSION}")
}

pub fn sh(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
