//! The agent binary follows its `--config` file while it runs: a broken version is
//! refused and counted, a good one applied and counted, a restart-only key is
//! named in the log, and the process keeps running throughout.

#[allow(dead_code)]
mod binaries;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use binaries::{binary, free_port};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scrape(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

fn wait_for_metric(port: u16, sample: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = scrape(port).unwrap_or_default();
        if text.lines().any(|line| line == sample) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {sample:?} within 10 s; last scrape:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replaces the file the way the kubelet updates a mounted ConfigMap: a new file
/// renamed over the old one.
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).expect("write");
    std::fs::rename(&next, path).expect("rename");
}

#[test]
fn a_running_agent_refuses_a_broken_config_and_applies_a_good_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "monitor-aggregation: medium\nevent-buffer-capacity: 4095\n").expect("config");
    let log = dir.path().join("agent.log");
    let metrics = free_port();
    let mut agent = Agent(
        Command::new(binary("sightline-agent"))
            .args([
                "--k8s-disabled",
                "--synthetic-flows-per-second",
                "20",
                "--listen-address",
                "",
            ])
            .arg("--socket-path")
            .arg(dir.path().join("hubble.sock"))
            .arg("--metrics-server")
            .arg(format!("127.0.0.1:{metrics}"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("agent starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while scrape(metrics).is_none() {
        assert!(Instant::now() < deadline, "no /metrics on {metrics}");
        std::thread::sleep(Duration::from_millis(50));
    }

    replace(&config, "monitor-aggregation: sometimes\nevent-buffer-capacity: 4095\n");
    wait_for_metric(metrics, r#"sightline_agent_config_reloads_total{result="error"} 1"#);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("configuration refused") && text.contains("sometimes"),
        "the log says what was refused and why:\n{text}"
    );

    replace(&config, "monitor-aggregation: low\nevent-buffer-capacity: 1023\n");
    wait_for_metric(metrics, r#"sightline_agent_config_reloads_total{result="success"} 1"#);
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("only after a restart") && text.contains("event-buffer-capacity"),
        "the restart-only key is named:\n{text}"
    );
    assert!(
        scrape(metrics)
            .unwrap_or_default()
            .contains("sightline_observer_ring_capacity 4095"),
        "the ring keeps the capacity it started with"
    );
    assert!(agent.0.try_wait().expect("status").is_none(), "the agent keeps running");
}
