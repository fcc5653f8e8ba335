//! Every binary behaves the same way at its edges: help and version on stdout with
//! exit 0, a usage error as one clap message with exit 2, a start-up error as one
//! `Error: …` line naming what to fix with exit 1 and no backtrace unless asked,
//! logs on stderr without colour codes when stderr is not a terminal, JSON logs on
//! request, and the agent's unix socket gone after a clean stop.

#[allow(dead_code)]
mod binaries;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use binaries::binary;

const BINARIES: [&str; 3] = ["sightline-agent", "sightline-relay", "sightline-operator"];

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary(name));
    command.args(args).env_remove("RUST_BACKTRACE").env_remove("RUST_LOG");
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .output()
        .unwrap_or_else(|error| panic!("running {name}: {error}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_go_to_stdout_and_exit_zero() {
    for name in BINARIES {
        let help = run(name, &["--help"], &[]);
        assert_eq!(help.status.code(), Some(0), "{name} --help: {}", text(&help.stderr));
        assert!(
            text(&help.stdout).contains("Usage:"),
            "{name} --help stdout: {}",
            text(&help.stdout)
        );
        assert!(
            text(&help.stdout).contains("--log-format"),
            "{name} documents --log-format"
        );
        assert!(help.stderr.is_empty(), "{name} --help stderr: {}", text(&help.stderr));

        let version = run(name, &["--version"], &[]);
        assert_eq!(version.status.code(), Some(0), "{name} --version");
        assert_eq!(
            text(&version.stdout).trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION")),
            "{name} --version"
        );
        assert!(
            version.stderr.is_empty(),
            "{name} --version stderr: {}",
            text(&version.stderr)
        );
    }
}

#[test]
fn a_usage_error_is_one_clap_message_with_exit_two() {
    for name in BINARIES {
        let output = run(name, &["--no-such-flag"], &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.starts_with("error: unexpected argument '--no-such-flag'"),
            "{name}: {stderr}"
        );
        assert!(
            !stderr.contains("Error: error"),
            "{name} wraps clap's message: {stderr}"
        );
        assert!(output.stdout.is_empty(), "{name} stdout: {}", text(&output.stdout));

        // Otherwise valid flags, so that the log level is the one thing wrong.
        let valid: &[&str] = match name {
            "sightline-relay" => &["--disable-client-tls", "--disable-server-tls"],
            _ => &[],
        };
        let bad_value = run(name, &[valid, &["--log-level", "info,x=loud"]].concat(), &[]);
        let stderr = text(&bad_value.stderr);
        assert_eq!(bad_value.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with("Error: invalid --log-level \"info,x=loud\""),
            "{name}: {stderr}"
        );
    }
}

/// Start-up errors: the agent with TLS on but no certificate, the relay on a
/// port that is taken.
fn startup_failure(name: &str, env: &[(&str, &str)]) -> Output {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("hubble.sock");
    match name {
        "sightline-agent" => run(
            name,
            &[
                "--k8s-disabled",
                "--synthetic-flows-per-second",
                "1",
                "--listen-address",
                "127.0.0.1:0",
            ],
            &[&[("SIGHTLINE_SOCKET_PATH", socket.to_str().expect("utf-8"))], env].concat(),
        ),
        _ => run(
            name,
            &[
                "--disable-client-tls",
                "--disable-server-tls",
                "--peers",
                "a=127.0.0.1:1",
                "--health-listen-address",
                "",
                "--metrics-listen-address",
                "",
                "--listen-address",
                &format!("127.0.0.1:{port}"),
            ],
            env,
        ),
    }
}

#[test]
fn a_startup_error_is_one_line_naming_the_fix_without_a_backtrace() {
    for (name, names_the_fix) in [
        ("sightline-agent", "--tls-cert-file"),
        ("sightline-relay", "127.0.0.1:"),
    ] {
        let output = startup_failure(name, &[]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|line| line.starts_with("Error: ")).collect();
        assert_eq!(errors.len(), 1, "{name}: {stderr}");
        assert!(errors[0].contains(names_the_fix), "{name}: {stderr}");
        assert!(
            !stderr.contains("Stack backtrace") && !stderr.contains("stack backtrace"),
            "{name}: {stderr}"
        );
        assert!(
            !stderr.contains("\u{1b}["),
            "{name} writes colour codes to a pipe: {stderr}"
        );

        let with_backtrace = startup_failure(name, &[("RUST_BACKTRACE", "1")]);
        let stderr = text(&with_backtrace.stderr);
        assert_eq!(with_backtrace.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.to_lowercase().contains("backtrace"),
            "{name} with RUST_BACKTRACE=1: {stderr}"
        );
    }
}

#[test]
fn json_logs_and_the_socket_removed_after_a_clean_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("hubble.sock");
    let mut child = Command::new(binary("sightline-agent"))
        .args([
            "--k8s-disabled",
            "--synthetic-flows-per-second",
            "10",
            "--listen-address",
            "",
        ])
        .args(["--log-format", "json", "--log-level", "info"])
        .arg("--socket-path")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("agent starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "the agent never bound its socket");
        assert!(child.try_wait().expect("wait").is_none(), "the agent exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on the pid of a child we own and have not reaped.
    let sent = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0);
    let output = child.wait_with_output().expect("agent output");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!socket.exists(), "the socket is still there after a clean stop");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "shutting down" && line["signal"] == "SIGTERM"),
        "{stderr}"
    );
    assert!(lines.iter().all(|line| line["level"].is_string()), "{stderr}");
}
