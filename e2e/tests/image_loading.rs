//! The archives load where users load them: containerd (`ctr images import`, which `kind
//! load image-archive` runs inside the kind node) names each image after its reference and
//! runs its entrypoint; podman and buildah load it under the same reference. Every runtime
//! here uses private, temporary storage, so the machine's own images are not touched.

mod images_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use images_support::*;
use serde_json::Value;

/// A containerd of our own (no CRI plugin), stopped and unmounted when dropped.
struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let config = root.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{0}/containerd.sock\"\n",
                root.display()
            ),
        )
        .expect("write containerd config");
        let log = std::fs::File::create(root.join("containerd.log")).expect("log file");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start containerd ({e}); run `bash scripts/setup`"));
        let containerd = Self { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !containerd.socket().exists()
            || !Command::new("ctr")
                .args(["-a", &containerd.socket_arg(), "version"])
                .output()
                .is_ok_and(|o| o.status.success())
        {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                containerd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        containerd
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn socket_arg(&self) -> String {
        self.socket().display().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> String {
        let socket = self.socket_arg();
        let mut all = vec!["-a", socket.as_str(), "-n", "k8s.io"];
        all.extend_from_slice(args);
        sh("ctr", &all)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Snapshots and the shim's mounts live under root; unmount before the tempdir goes.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path().join("root"))
            .status();
    }
}

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
