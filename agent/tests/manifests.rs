//! Standalone mode: objects from a directory of YAML files, reloaded on change.
#![allow(clippy::unwrap_used)]

mod enrich_support;

use std::time::{Duration, SystemTime};

use enrich_support::*;
use sightline_agent::k8s::manifests::{ManifestDir, ManifestError};

fn write(dir: &std::path::Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    // Distinct mtimes even on coarse-grained filesystems.
    let later = SystemTime::now() + Duration::from_secs(rand_secs());
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(later)
        .unwrap();
}

fn rand_secs() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn pod_name_at(index: &sightline_agent::enrich::Index, ip: &str) -> Option<String> {
    index
        .endpoint(ip.parse().unwrap())
        .map(|e| e.pod_name.clone())
        .filter(|n| !n.is_empty())
}

#[test]
fn multi_document_files_load_and_a_broken_file_loses_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let two_pods = format!(
        "{}{}",
        pod("shop", "a", "ua", &["10.0.1.1"], "n1", "2026-01-01T00:00:00Z", ""),
        pod("shop", "b", "ub", &["10.0.1.2"], "n1", "2026-01-01T00:00:00Z", "")
    );
    write(dir.path(), "pods.yaml", &two_pods);
    write(dir.path(), "svc.yml", &service("shop", "web", "10.96.0.1"));
    write(dir.path(), "notes.txt", "not a manifest");
    let index = index("n1");
    let mut manifests = ManifestDir::new(dir.path());
    manifests.sync(&index).unwrap();
    assert_eq!(pod_name_at(&index, "10.0.1.1").as_deref(), Some("a"));
    assert_eq!(pod_name_at(&index, "10.0.1.2").as_deref(), Some("b"));
    assert_eq!(index.service("10.96.0.1".parse().unwrap()).unwrap().name, "web");

    // Break the pods file: the error names the file and document, and both the
    // other file and this file's last good objects stay.
    write(
        dir.path(),
        "pods.yaml",
        &format!(
            "{}kind: Pod\nmetadata: [oops\n",
            pod("shop", "c", "uc", &["10.0.1.3"], "n1", "2026-01-01T00:00:00Z", "")
        ),
    );
    let (changed, errors) = manifests.reload().unwrap();
    assert!(!changed);
    match &errors[..] {
        [ManifestError::Parse { path, document, .. }] => {
            assert!(path.ends_with("pods.yaml"));
            assert_eq!(*document, 2);
        }
        other => panic!("expected one parse error, got {other:?}"),
    }
    manifests.sync(&index).unwrap();
    assert_eq!(pod_name_at(&index, "10.0.1.1").as_deref(), Some("a"));
    assert_eq!(pod_name_at(&index, "10.0.1.3"), None);
    assert_eq!(index.service("10.96.0.1".parse().unwrap()).unwrap().name, "web");
}

#[test]
fn edits_and_removed_files_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "pods.yaml",
        &pod("shop", "a", "ua", &["10.0.1.1"], "n1", "2026-01-01T00:00:00Z", ""),
    );
    write(dir.path(), "svc.yaml", &service("shop", "web", "10.96.0.1"));
    let index = index("n1");
    let mut manifests = ManifestDir::new(dir.path());
    manifests.sync(&index).unwrap();
    write(
        dir.path(),
        "pods.yaml",
        &pod("shop", "z", "uz", &["10.0.1.1"], "n1", "2026-01-01T00:00:00Z", ""),
    );
    std::fs::remove_file(dir.path().join("svc.yaml")).unwrap();
    assert!(manifests.sync(&index).unwrap());
    assert_eq!(pod_name_at(&index, "10.0.1.1").as_deref(), Some("z"));
    assert!(index.service("10.96.0.1".parse().unwrap()).is_none());
}

#[test]
fn a_pod_without_a_kind_or_a_wrong_field_type_is_a_clear_error() {
    let err =
        sightline_agent::k8s::manifests::parse(std::path::Path::new("x.yaml"), "metadata: {name: a}\n").unwrap_err();
    assert_eq!(err.to_string(), "x.yaml: document 1: no `kind` field");
    let err = sightline_agent::k8s::manifests::parse(
        std::path::Path::new("y.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: 7}\n",
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("y.yaml: document 1: Pod: "), "{err}");
}

#[test]
fn a_missing_directory_is_reported() {
    let mut manifests = ManifestDir::new("/nonexistent/sightline-manifests");
    let err = manifests.reload().unwrap_err();
    assert!(err.to_string().contains("/nonexistent/sightline-manifests"), "{err}");
}
