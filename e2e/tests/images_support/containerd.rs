//! A private containerd daemon for the image tests: its own root, state and socket, no
//! CRI plugin, stopped and unmounted when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sh;

/// A containerd of our own (no CRI plugin), stopped and unmounted when dropped.
pub struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    pub fn start() -> Self {
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

    pub fn socket_arg(&self) -> String {
        self.socket().display().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr` against this daemon in the `k8s.io` namespace, for the caller to run or spawn.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ctr");
        command.args(["-a", &self.socket_arg(), "-n", "k8s.io"]).args(args);
        command
    }

    pub fn ctr(&self, args: &[&str]) -> String {
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
