//! The agent image runs with exactly the hardening the chart gives it, and with nothing
//! less: inside a real container runtime (a private containerd) with host networking, a
//! read-only root filesystem, the runtime's default seccomp profile, no capability but the
//! ones the chart's DaemonSet adds, and the chart's writable socket directory, the agent
//! loads its eBPF programs and attaches them to an interface; without any one of those
//! capabilities it fails.

mod images_support;

use std::time::{Duration, Instant};

use images_support::containerd::Containerd;
use images_support::*;
use serde::Deserialize;
use serde_json::Value;

/// What `ctr run` grants unless told otherwise (the runtime's default set); each is dropped
/// so the container holds only what a test adds, as with the chart's `drop: [ALL]`.
const CTR_DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The capabilities the chart's agent container adds, read from the rendered DaemonSet.
fn chart_capabilities() -> Vec<String> {
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/sightline");
    let rendered = sh(
        "helm",
        &[
            "template",
            "sightline",
            chart.to_str().expect("UTF-8"),
            "--show-only",
            "templates/agent/daemonset.yaml",
        ],
    );
    let daemonset = Value::deserialize(serde_yaml_ng::Deserializer::from_str(&rendered)).expect("DaemonSet YAML");
    let agent = &daemonset["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(agent["securityContext"]["readOnlyRootFilesystem"], true);
    agent["securityContext"]["capabilities"]["add"]
        .as_array()
        .expect("added capabilities")
        .iter()
        .map(|c| c.as_str().expect("capability name").to_owned())
        .collect()
}

enum Outcome {
    Served,
    Failed(String),
}

/// A veth pair in the host namespace for the agent to attach to, removed on drop.
struct TestInterface(String);

impl TestInterface {
    fn create(name: &str) -> Self {
        let _ = std::process::Command::new("ip").args(["link", "del", name]).status();
        sh(
            "ip",
            &["link", "add", name, "type", "veth", "peer", "name", &format!("{name}p")],
        );
        sh("ip", &["link", "set", name, "up"]);
        Self(name.to_owned())
    }
}

impl Drop for TestInterface {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// Runs the agent image with `capabilities` and the chart's mounts, observing `interface`;
/// `Served` once it logs that it observes the interface (programs loaded and attached),
/// after which it is stopped with SIGTERM and must exit cleanly.
fn run_agent(containerd: &Containerd, name: &str, capabilities: &[String], interface: &str) -> Outcome {
    let workdir = tempfile::tempdir().expect("tempdir");
    let socket_dir = workdir.path().join("socket");
    std::fs::create_dir(&socket_dir).expect("socket dir");
    let log_path = workdir.path().join("agent.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut args = vec![
        "run".to_owned(),
        "--rm".into(),
        "--net-host".into(),
        "--read-only".into(),
        "--seccomp".into(),
    ];
    for capability in CTR_DEFAULT_CAPABILITIES {
        args.extend(["--cap-drop".into(), format!("CAP_{capability}")]);
    }
    for capability in capabilities {
        args.extend(["--cap-add".into(), format!("CAP_{capability}")]);
    }
    args.extend([
        "--mount".into(),
        "type=bind,src=/sys/kernel/btf,dst=/sys/kernel/btf,options=rbind:ro".into(),
        "--mount".into(),
        format!(
            "type=bind,src={},dst=/var/run/sightline,options=rbind:rw",
            socket_dir.display()
        ),
        reference("agent"),
        name.into(),
        "/usr/bin/sightline-agent".into(),
        "--disable-server-tls".into(),
        "--k8s-disabled".into(),
        // TCP off: the check is the datapath, and the host's ports are shared.
        "--listen-address=".into(),
        format!("--interfaces={interface}"),
        "--node-name=capability-check".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = containerd
        .ctr_command(&args)
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("spawn ctr run");
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if read_log()
            .lines()
            .any(|l| l.contains("observing") && l.contains(interface))
        {
            // ctr forwards the signal to the task; the agent stops on SIGTERM.
            let pid = i32::try_from(child.id()).expect("pid fits");
            // SAFETY: kill(2) on the ctr process this test spawned and has not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let status = child.wait().expect("ctr run ends");
            assert!(status.success(), "the agent did not stop cleanly:\n{}", read_log());
            return Outcome::Served;
        }
        if child.try_wait().expect("poll ctr").is_some() {
            return Outcome::Failed(read_log());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the agent neither observed {interface} nor exited within 60 s:\n{}",
                read_log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_agent_image_serves_with_the_charts_capabilities_and_fails_without_any_one_of_them() {
    let capabilities = chart_capabilities();
    assert_eq!(capabilities, ["BPF", "NET_ADMIN", "PERFMON"]);
    let containerd = Containerd::start();
    let interface = TestInterface::create(&format!("slcap{}", std::process::id() % 100_000));
    containerd.ctr(&["images", "import", archive("agent").to_str().expect("UTF-8")]);

    match run_agent(&containerd, "agent-all-capabilities", &capabilities, &interface.0) {
        Outcome::Served => {}
        Outcome::Failed(log) => panic!("the agent failed with the chart's capabilities {capabilities:?}:\n{log}"),
    }
    for missing in &capabilities {
        let fewer: Vec<String> = capabilities.iter().filter(|c| *c != missing).cloned().collect();
        match run_agent(
            &containerd,
            &format!("agent-without-{}", missing.to_lowercase().replace('_', "-")),
            &fewer,
            &interface.0,
        ) {
            Outcome::Served => panic!("the agent ran without CAP_{missing}: the chart grants more than it needs"),
            Outcome::Failed(log) => assert!(
                log.contains("Operation not permitted") || log.contains("Permission denied"),
                "without CAP_{missing} the agent should fail on a permission check:\n{log}"
            ),
        }
    }
}
