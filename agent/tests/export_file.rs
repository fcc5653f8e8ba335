//! The agent binary exporting synthetic flows: lines an independent protobuf
//! JSON parser accepts (Python, built from Hubble's descriptor set, unknown fields
//! rejected), allow/deny lists and field masks, and size rotation with gzip under
//! load with every flow exported exactly once.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn descriptor_set() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/hubble-api/hubble-api.binpb")
}

fn agent(dir: &Path, rate: &str, extra: &[&str]) -> Process {
    let child = Command::new(env!("CARGO_BIN_EXE_sightline-agent"))
        .args([
            "--synthetic-flows-per-second",
            rate,
            "--disable-server-tls",
            "--listen-address",
            "127.0.0.1:0",
            "--socket-path",
            "",
            "--k8s-disabled",
            "--node-name",
            "node-1",
            "--export-file-path",
        ])
        .arg(dir.join("events.log"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Process(child)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    all.sort();
    all
}

fn parse(files: &[PathBuf]) -> serde_json::Value {
    // Debian's python3, where scripts/setup installs python3-protobuf.
    let output = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export_lines.py"))
        .arg(descriptor_set())
        .args(files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the independent parser refused a line:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn uuid_number(uuid: &str) -> u64 {
    u64::from_str_radix(uuid.rsplit('-').next().unwrap(), 16).unwrap()
}

#[test]
fn rotation_under_load_keeps_every_flow_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(
        dir.path(),
        "10000",
        &[
            "--export-file-max-size-mb",
            "1",
            "--export-file-max-backups",
            "100",
            "--export-file-compress",
        ],
    );
    wait_until("four rotations", || {
        files(dir.path())
            .iter()
            .filter(|f| f.to_string_lossy().ends_with(".gz"))
            .count()
            >= 4
    });
    drop(agent);
    // A compression cut short by the kill leaves a `.tmp` beside the plain backup.
    let all: Vec<PathBuf> = files(dir.path())
        .into_iter()
        .filter(|f| !f.to_string_lossy().ends_with(".tmp"))
        .collect();
    let summary = parse(&all);
    let mut numbers: Vec<u64> = summary["uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| uuid_number(u.as_str().unwrap()))
        .collect();
    let exported = numbers.len();
    assert!(exported > 4000, "{exported} flows");
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), exported, "a flow exported twice");
    // Flows are numbered from 0 in the order they were produced; the killed agent
    // may have lost its last unwritten batch, never one in the middle.
    assert_eq!(numbers[0], 0);
    assert_eq!(
        *numbers.last().unwrap(),
        exported as u64 - 1,
        "a gap: flows lost across rotations"
    );
    assert!(all.iter().any(|f| f.ends_with("events.log")));
}

#[test]
fn allow_list_and_field_mask_shape_the_lines() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(
        dir.path(),
        "1000",
        &[
            "--export-allowlist",
            r#"{"verdict":["DROPPED"]}
               {"verdict":["DROPPED"],"destination_port":["80"]}"#,
            "--export-denylist",
            r#"{"destination_port":["5432"]}"#,
            "--export-fieldmask",
            "time,uuid,verdict,node_name,l4.TCP.destination_port",
        ],
    );
    let log = dir.path().join("events.log");
    wait_until("exported lines", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 20)
    });
    drop(agent);
    let summary = parse(std::slice::from_ref(&log));
    assert_eq!(
        summary["verdicts"].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["DROPPED"],
        "{summary}"
    );
    assert_eq!(
        summary["flow_keys"],
        serde_json::json!(["l4", "node_name", "time", "uuid", "verdict"]),
        "only the masked fields"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["node_name"], "node-1");
    assert_eq!(first["time"], first["flow"]["time"], "time comes from the flow");
    // Synthetic flow n goes to port [80, 443, 8080, 5432][n % 4] and is dropped when n % 10 == 9.
    for uuid in summary["uuids"].as_array().unwrap() {
        let n = uuid_number(uuid.as_str().unwrap());
        assert_eq!(n % 10, 9, "flow {n} is not a drop");
        assert_ne!(n % 4, 3, "flow {n} to 5432 was denied");
    }
    assert!(!text.contains(r#""destination_port":5432"#), "the deny list wins");
}

/// Aggregated lines as Hubble writes them: the aggregate fields, the time of each
/// group's first flow and the counts, accepted by the independent parser.
#[test]
fn aggregated_lines_hold_the_fields_the_time_and_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(
        dir.path(),
        "2000",
        &[
            "--export-fieldaggregate",
            "verdict,destination.namespace",
            "--export-aggregation-interval",
            "500ms",
        ],
    );
    let log = dir.path().join("events.log");
    // Two verdicts and four namespaces: at most 8 groups per interval.
    wait_until("three intervals of groups", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 17)
    });
    drop(agent);
    let summary = parse(std::slice::from_ref(&log));
    assert_eq!(
        summary["flow_keys"],
        serde_json::json!(["aggregate", "destination", "time", "verdict"]),
        "{summary}"
    );
    let lines = summary["lines"].as_u64().unwrap();
    assert_eq!(summary["aggregated_lines"].as_u64().unwrap(), lines);
    let flows = summary["aggregated_flows"].as_u64().unwrap();
    assert!(flows >= 2 * lines, "{flows} flows in {lines} lines: flows are grouped");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut groups = std::collections::HashSet::new();
    for line in text.lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(line["time"], line["flow"]["time"]);
        assert!(line.get("node_name").is_none(), "node_name is not an aggregate field");
        let namespace = line["flow"]["destination"]["namespace"].as_str().unwrap().to_owned();
        groups.insert((line["flow"]["verdict"].as_str().unwrap().to_owned(), namespace));
    }
    assert_eq!(groups.len(), 8, "{groups:?}");
}

#[test]
fn a_bad_filter_or_mask_stops_the_agent_naming_it() {
    for (flag, value, named) in [
        ("--export-allowlist", r#"{"verdicts":["DROPPED"]}"#, "verdicts"),
        ("--export-fieldmask", "source.pod", "source.pod"),
        (
            "--export-fieldaggregate",
            "verdict,destination.nope",
            "destination.nope",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_sightline-agent"))
            .args([
                "--k8s-disabled",
                "--disable-server-tls",
                "--listen-address",
                "127.0.0.1:0",
                "--socket-path",
                "",
            ])
            .arg("--export-file-path")
            .arg(dir.path().join("e.log"))
            .args([flag, value])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{flag} {value} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{flag}: {stderr}");
    }
}
