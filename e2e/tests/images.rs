//! The OCI archives `scripts/images` writes to target/images/ (scripts/test builds them
//! before this runs; a missing archive fails). Each is unpacked as a runtime would: the
//! index names the image for containerd and podman, the config's entrypoint is the
//! binary, the user is non-root where promised, the labels carry version, revision and
//! source, and the binary in the unpacked root filesystem prints the workspace version.
//! Loading into container runtimes is `image_loading.rs`.

mod images_support;

use std::path::{Path, PathBuf};

use images_support::*;
use serde_json::Value;

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn blob(layout: &Path, descriptor: &Value) -> PathBuf {
    let digest = descriptor["digest"].as_str().expect("descriptor digest");
    let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
    layout.join("blobs").join(algorithm).join(hex)
}

/// Every regular file under `root`, relative, sorted.
fn files(root: &Path) -> Vec<String> {
    let mut found = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(root).expect("under root").display().to_string());
            }
        }
    }
    found.sort();
    found
}

fn check_archive(image: &Image) {
    let name = format!("sightline-{}", image.component);
    let archive = archive(image.component);
    let layout = tempfile::tempdir().expect("tempdir");
    sh(
        "tar",
        &[
            "-xf",
            archive.to_str().expect("UTF-8"),
            "-C",
            layout.path().to_str().expect("UTF-8"),
        ],
    );
    assert_eq!(
        read_json(&layout.path().join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );

    let index = read_json(&layout.path().join("index.json"));
    let manifests = index["manifests"].as_array().expect("index manifests");
    assert_eq!(manifests.len(), 1, "{name}: one image per archive");
    let annotations = &manifests[0]["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.ref.name"],
        reference(image.component),
        "{name}: podman's name"
    );
    assert_eq!(
        annotations["io.containerd.image.name"],
        reference(image.component),
        "{name}: containerd's name"
    );

    let manifest = read_json(&blob(layout.path(), &manifests[0]));
    let config = read_json(&blob(layout.path(), &manifest["config"]));
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    let runtime = &config["config"];
    assert_eq!(
        runtime["Entrypoint"],
        serde_json::json!([format!("/usr/bin/{name}")]),
        "{name}: entrypoint"
    );
    assert_eq!(runtime["User"], image.user, "{name}: user");
    let labels = &runtime["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"], VERSION,
        "{name}: version label"
    );
    assert_eq!(labels["org.opencontainers.image.title"], name.as_str());
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .expect("revision label");
    assert!(
        revision.len() >= 40 && revision[..40].chars().all(|c| c.is_ascii_hexdigit()),
        "{name}: revision {revision:?}"
    );
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{name}: source label"
    );

    // Unpack the layers in order, as a runtime builds the root filesystem.
    let rootfs = tempfile::tempdir().expect("tempdir");
    for layer in manifest["layers"].as_array().expect("layers") {
        let path = blob(layout.path(), layer);
        sh(
            "tar",
            &[
                "-xf",
                path.to_str().expect("UTF-8"),
                "-C",
                rootfs.path().to_str().expect("UTF-8"),
            ],
        );
    }
    assert_eq!(
        files(rootfs.path()),
        [
            "etc/group",
            "etc/passwd",
            "etc/ssl/certs/ca-certificates.crt",
            format!("usr/bin/{name}").as_str()
        ],
        "{name}: a scratch image holds the binary, its users and CA bundle, nothing else"
    );
    let passwd = std::fs::read_to_string(rootfs.path().join("etc/passwd")).expect("passwd");
    let uid = image.user.split(':').next().expect("uid");
    assert!(
        passwd.lines().any(|l| l.split(':').nth(2) == Some(uid)),
        "{name}: uid {uid} not in /etc/passwd:\n{passwd}"
    );

    // A static binary runs from the unpacked root without anything else from the image.
    let binary = rootfs.path().join(format!("usr/bin/{name}"));
    let version = sh(binary.to_str().expect("UTF-8"), &["--version"]);
    assert_eq!(version.trim(), format!("{name} {VERSION}"), "{name} --version");
    let size = std::fs::metadata(&archive).expect("archive").len();
    println!("{name}: archive {} KiB", size / 1024);
}

#[test]
fn agent_archive_holds_a_runnable_static_agent_running_as_root() {
    check_archive(&IMAGES[0]);
}

#[test]
fn relay_archive_holds_a_runnable_static_relay_running_as_non_root() {
    check_archive(&IMAGES[1]);
}

#[test]
fn operator_archive_holds_a_runnable_static_operator_running_as_non_root() {
    check_archive(&IMAGES[2]);
}
