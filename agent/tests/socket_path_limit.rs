//! `--socket-path` at the edge of the kernel's limit: `sun_path` holds 108 bytes
//! including the terminating NUL, so a path of 107 bytes is served (a Hubble-style
//! client connects through it and a clean stop removes it) and a longer one is a
//! one-line start-up error naming the flag and the limit.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, ServerStatusRequest};
use support::{collect, unix_channel};

const AGENT: &str = env!("CARGO_BIN_EXE_sightline-agent");

/// A socket path of exactly `length` bytes under `base`, ending in `file_name`;
/// its directory is created, as an operator would have it.
fn path_of_length(base: &Path, length: usize, file_name: &str) -> PathBuf {
    let base = base.to_str().unwrap();
    let padding = length - base.len() - 2 - file_name.len();
    let dir = PathBuf::from(format!("{base}/{}", "d".repeat(padding)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file_name);
    assert_eq!(path.as_os_str().len(), length);
    path
}

fn agent(socket: &Path) -> Command {
    let mut command = Command::new(AGENT);
    command
        .args([
            "--k8s-disabled",
            "--listen-address",
            "",
            "--synthetic-flows-per-second",
            "20",
        ])
        .arg("--socket-path")
        .arg(socket)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn wait_for_socket(child: &mut Child, socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            panic!(
                "the agent exited with {status} before binding {}: {stderr}",
                socket.display()
            );
        }
        assert!(Instant::now() < deadline, "the agent never bound {}", socket.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(child: Child) -> Output {
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    let sent = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn a_107_byte_socket_path_is_served_and_removed_on_a_clean_stop() {
    let base = tempfile::tempdir().unwrap();
    // The usual file name, and a one-letter one (the agent must not need more room
    // for its own bookkeeping than the path the operator chose).
    for file_name in ["hubble.sock", "s"] {
        let socket = path_of_length(base.path(), 107, file_name);
        let mut child = agent(&socket).spawn().unwrap();
        wait_for_socket(&mut child, &socket);

        let mut client = ObserverClient::new(unix_channel(socket.clone()).await);
        let status = client.server_status(ServerStatusRequest {}).await;
        let flows = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let got = collect(
                    &mut client,
                    GetFlowsRequest {
                        number: 1,
                        ..Default::default()
                    },
                )
                .await;
                if !got.is_empty() {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        drop(client);

        let output = stop(child);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(status.is_ok(), "{file_name}: ServerStatus over the socket: {status:?}");
        assert!(flows.is_ok(), "{file_name}: no flow read through the socket");
        assert_eq!(output.status.code(), Some(0), "{file_name}: {stderr}");
        assert!(
            !socket.exists(),
            "{file_name}: the socket is still there after a clean stop"
        );
        let leftovers: Vec<_> = std::fs::read_dir(socket.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert!(leftovers.is_empty(), "{file_name}: left behind {leftovers:?}");
    }
}

#[test]
fn a_longer_socket_path_is_a_one_line_error_naming_the_flag_and_the_limit() {
    let base = tempfile::tempdir().unwrap();
    for length in [108, 109, 200] {
        let socket = path_of_length(base.path(), length, "hubble.sock");
        let output = agent(&socket).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{length} bytes: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|line| line.starts_with("Error: ")).collect();
        assert_eq!(errors.len(), 1, "{length} bytes: {stderr}");
        let error = errors[0];
        assert!(
            error.contains("--socket-path") && error.contains(&format!("{length} bytes")) && error.contains("107"),
            "{length} bytes: the error names neither the flag nor the limit: {error}"
        );
        assert!(!socket.exists(), "{length} bytes: something was created at the path");
    }
}
