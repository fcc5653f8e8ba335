//! The archives load where users load them: containerd (`ctr images import`, which `kind
//! load image-archive` runs inside the kind node) names each image after its reference and
//! runs its entrypoint; podman and buildah load it under the same reference. Every runtime
//! here uses private, temporary storage, so the machine's own images are not touched.

mod images_support;

use std::path::Path;
use std::process::Command;

use images_support::containerd::Containerd;
use images_support::*;
use serde_json::Value;

#[test]
fn containerd_imports_every_archive_under_its_reference_and_runs_its_entrypoint() {
    let containerd = Containerd::start();
    for image in &IMAGES {
        let archive = archive(image.component);
        containerd.ctr(&["images", "import", archive.to_str().expect("UTF-8")]);
    }
    let listed = containerd.ctr(&["images", "ls", "-q"]);
    for image in &IMAGES {
        let reference = reference(image.component);
        assert!(
            listed.lines().any(|l| l == reference),
            "ctr lists {reference}:\n{listed}"
        );
        // `ctr run IMAGE ID ARGS` replaces the command, so name the entrypoint explicitly.
        let name = format!("sightline-{}", image.component);
        let printed = containerd.ctr(&[
            "run",
            "--rm",
            &reference,
            &format!("version-{name}"),
            &format!("/usr/bin/{name}"),
            "--version",
        ]);
        assert_eq!(
            printed.trim(),
            format!("{name} {VERSION}"),
            "{name} --version inside containerd"
        );
    }
}

/// Podman and buildah with a private image store.
fn storage_args(root: &Path) -> Vec<String> {
    vec![
        format!("--root={}", root.join("storage").display()),
        format!("--runroot={}", root.join("run").display()),
        "--storage-driver=vfs".to_owned(),
    ]
}

fn with_storage<'a>(storage: &'a [String], args: &[&'a str]) -> Vec<&'a str> {
    storage.iter().map(String::as_str).chain(args.iter().copied()).collect()
}

#[test]
fn podman_loads_every_archive_under_its_reference() {
    let store = tempfile::tempdir().expect("tempdir");
    let storage = storage_args(store.path());
    for image in &IMAGES {
        let archive = archive(image.component);
        let loaded = sh(
            "podman",
            &with_storage(&storage, &["load", "-i", archive.to_str().expect("UTF-8")]),
        );
        let reference = reference(image.component);
        assert!(
            loaded.contains(&format!("Loaded image: {reference}")),
            "podman load printed:\n{loaded}"
        );
        let inspected: Value = serde_json::from_str(&sh(
            "podman",
            &with_storage(&storage, &["image", "inspect", &reference]),
        ))
        .expect("podman inspect prints JSON");
        assert_eq!(inspected[0]["Config"]["User"], image.user, "{reference}: user");
    }
    let _ = Command::new("umount").arg("-R").arg(store.path()).status();
}

#[test]
fn buildah_pulls_every_archive_under_its_reference() {
    let store = tempfile::tempdir().expect("tempdir");
    let storage = storage_args(store.path());
    for image in &IMAGES {
        let source = format!("oci-archive:{}", archive(image.component).display());
        let id = sh("buildah", &with_storage(&storage, &["pull", "--quiet", &source]));
        let inspected: Value = serde_json::from_str(&sh(
            "buildah",
            &with_storage(&storage, &["inspect", "--type", "image", id.trim()]),
        ))
        .expect("buildah inspect prints JSON");
        assert_eq!(inspected["FromImage"], reference(image.component));
        assert_eq!(
            inspected["OCIv1"]["config"]["Entrypoint"],
            serde_json::json!([format!("/usr/bin/sightline-{}", image.component)])
        );
    }
    let _ = Command::new("umount").arg("-R").arg(store.path()).status();
}
