//! The README demo, run the way `scripts/demo` runs it (debug binaries here): with
//! `--once`, followed until SIGINT, and stopped by SIGTERM during setup. Every run
//! must leave nothing behind.

mod binaries;
#[path = "../../agent/tests/prometheus_support/mod.rs"]
mod prometheus_support;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, get_flows_response::ResponseTypes};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use binaries::{binary, free_port};
use prometheus_support::{get, samples, total, wait_for};

/// The demo's bridge, as the README names it.
const BRIDGE: &str = "sl-demo0";
/// The nftables table the demo's firewall rule lives in (inside the backend pod on node-b).
const FIREWALL_TABLE: &str = "sightline_demo";

/// The demo's bridge and addresses are fixed, so two demos cannot run at once; nextest
/// runs each test in its own process, hence a lock file rather than a mutex.
fn one_demo_at_a_time() -> File {
    let file = File::create(std::env::temp_dir().join("sightline-e2e-demo-tests.lock")).expect("lock file");
    file.lock().expect("lock");
    file
}

/// A running `sightline-demo`, with its own TMPDIR so its work directory can be found,
/// and its stdout delivered line by line. Dropping it stops the demo (SIGTERM) so a
/// failing test does not leave a demo running.
struct DemoRun {
    child: Child,
    tmpdir: tempfile::TempDir,
    relay_address: String,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stderr: Option<JoinHandle<String>>,
}

impl DemoRun {
    fn start(extra: &[&str]) -> Self {
        let (agent, relay) = (binary("sightline-agent"), binary("sightline-relay"));
        assert!(
            agent.exists() && relay.exists(),
            "agent and relay binaries are built beside the demo"
        );
        let relay_address = format!("127.0.0.1:{}", free_port());
        let tmpdir = tempfile::tempdir().expect("tmpdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sightline-demo"))
            .args(["--relay-address", &relay_address])
            .arg("--agent")
            .arg(&agent)
            .arg("--relay")
            .arg(&relay)
            .args(extra)
            .env("TMPDIR", tmpdir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("demo runs");
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            child,
            tmpdir,
            relay_address,
            lines,
            stdout: Vec::new(),
            stderr: Some(stderr),
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid")
    }

    /// Reads stdout until a line satisfies `done`; false if the demo ended or `within` passed.
    fn read_until(&mut self, within: Duration, done: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = done(&line);
                    self.stdout.push(line);
                    if found {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Sends `signal` to the demo process alone, not to its process group.
    fn signal(&self, signal: i32) {
        // SAFETY: signalling our own, not yet reaped child.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0, "kill");
    }

    /// Waits for the demo to exit; returns its status, whole stdout and stderr.
    fn wait(&mut self, within: Duration) -> (ExitStatus, String, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "demo still running after {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().expect("stderr reader"))
            .unwrap_or_default();
        (status, self.stdout.join("\n"), stderr)
    }

    fn stdout_line(&self, containing: &str) -> Option<&str> {
        self.stdout.iter().find(|l| l.contains(containing)).map(String::as_str)
    }
}

impl Drop for DemoRun {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: signalling our own, not yet reaped child.
            unsafe { libc::kill(self.pid(), libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}

/// `/proc/<pid>/stat`: (parent pid, start time), telling a process from a later one that
/// reuses its pid.
fn stat(pid: i32) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name, which may itself hold spaces.
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// Every process descended from `root`, with its start time.
fn descendants(root: i32) -> Vec<(i32, u64)> {
    let table: Vec<(i32, i32, u64)> = all_pids()
        .into_iter()
        .filter_map(|pid| stat(pid).map(|(parent, start)| (pid, parent, start)))
        .collect();
    let mut found = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for &(pid, _, start) in table.iter().filter(|(_, p, _)| *p == parent) {
            found.push((pid, start));
            parents.push(pid);
        }
    }
    found
}

fn command_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Processes whose command line mentions `needle` (the demo's TMPDIR or relay address).
fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    all_pids()
        .into_iter()
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(needle).then_some((pid, cmdline))
        })
        .collect()
}

/// The harness names every namespace it creates `sln`/`slp` + the creating process's
/// id in hex + `x`, so these are the namespaces the demo process made.
fn namespaces_of(pid: i32) -> Vec<String> {
    let output = Command::new("ip").args(["netns", "list"]).output().expect("ip netns");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| {
            [format!("sln{pid:x}x"), format!("slp{pid:x}x")]
                .iter()
                .any(|p| name.starts_with(p))
        })
        .map(str::to_owned)
        .collect()
}

/// Links in the host whose name starts with the demo's bridge: the bridge and its uplinks.
fn bridge_links() -> Vec<String> {
    let output = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
        .filter(|name| name.starts_with(BRIDGE))
        .collect()
}

fn nft_tables(netns: Option<&str>) -> String {
    let output = match netns {
        Some(netns) => Command::new("ip")
            .args(["netns", "exec", netns, "nft", "list", "tables"])
            .output(),
        None => Command::new("nft").args(["list", "tables"]).output(),
    }
    .expect("nft");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the demo had created at one moment, seen from outside.
#[derive(Debug)]
struct Footprint {
    namespaces: Vec<String>,
    processes: Vec<(i32, u64)>,
    /// Names of the demo's descendant processes (`comm`).
    process_names: Vec<String>,
    bridge_links: Vec<String>,
    /// Namespaces holding the firewall's nftables table.
    firewall: Vec<String>,
    files: Vec<PathBuf>,
}

impl Footprint {
    fn of(demo: &DemoRun) -> Self {
        let namespaces = namespaces_of(demo.pid());
        let processes = descendants(demo.pid());
        Self {
            process_names: processes.iter().map(|(pid, _)| command_name(*pid)).collect(),
            firewall: namespaces
                .iter()
                .filter(|ns| nft_tables(Some(ns)).contains(FIREWALL_TABLE))
                .cloned()
                .collect(),
            files: files_in(demo.tmpdir.path()),
            bridge_links: bridge_links(),
            namespaces,
            processes,
        }
    }

    /// A fully set-up demo: six namespaces (two nodes, four pods), the bridge with two
    /// uplinks, two agents and the relay, the firewall in the backend pod, the work directory.
    fn assert_complete(&self) {
        assert_eq!(self.namespaces.len(), 6, "{self:#?}");
        assert_eq!(self.bridge_links.len(), 3, "{self:#?}");
        let count = |name: &str| self.process_names.iter().filter(|n| *n == name).count();
        assert_eq!(count("sightline-agent"), 2, "{self:#?}");
        assert_eq!(count("sightline-relay"), 1, "{self:#?}");
        assert_eq!(self.firewall.len(), 1, "{self:#?}");
        assert!(!self.files.is_empty(), "{self:#?}");
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Nothing the demo created is left: what `footprint` saw, and anything else that names
/// the demo (its namespaces, its TMPDIR, its relay address, the bridge, the firewall).
fn assert_nothing_left(demo: &DemoRun, footprint: &Footprint) {
    assert_eq!(namespaces_of(demo.pid()), Vec::<String>::new(), "namespaces left");
    assert_eq!(bridge_links(), Vec::<String>::new(), "bridge or uplinks left");
    assert!(
        !nft_tables(None).contains(FIREWALL_TABLE),
        "firewall table left in the host"
    );
    let alive: Vec<String> = footprint
        .processes
        .iter()
        .filter(|(pid, start)| stat(*pid).is_some_and(|(_, s)| s == *start))
        .map(|(pid, _)| format!("{pid} {}", command_name(*pid)))
        .collect();
    assert_eq!(alive, Vec::<String>::new(), "processes left");
    let tmpdir = demo.tmpdir.path().to_string_lossy().into_owned();
    assert_eq!(
        processes_mentioning(&tmpdir),
        Vec::new(),
        "processes using the work directory left"
    );
    assert_eq!(
        processes_mentioning(&demo.relay_address),
        Vec::new(),
        "relay process left"
    );
    assert_eq!(
        files_in(demo.tmpdir.path()),
        Vec::<PathBuf>::new(),
        "work directory left"
    );
}

/// `kind/name` of every workload on the flows the relay holds, polled until all four
/// demo workloads appear or `within` passes.
async fn workloads_seen(address: &str, within: Duration) -> BTreeSet<String> {
    let deadline = Instant::now() + within;
    let mut seen = BTreeSet::new();
    while Instant::now() < deadline && seen.len() < 4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(endpoint) = Endpoint::from_shared(format!("http://{address}")) else {
            break;
        };
        let Ok(channel) = endpoint.connect().await else {
            continue;
        };
        let request = GetFlowsRequest {
            number: 500,
            ..Default::default()
        };
        let Ok(response) = ObserverClient::new(channel).get_flows(request).await else {
            continue;
        };
        let mut stream = response.into_inner();
        while let Ok(Some(message)) = stream.message().await {
            if let Some(ResponseTypes::Flow(flow)) = message.response_types {
                for endpoint in [flow.source, flow.destination].into_iter().flatten() {
                    seen.extend(endpoint.workloads.iter().map(|w| format!("{}/{}", w.kind, w.name)));
                }
            }
        }
    }
    seen
}

/// The value after `flag` in a printed command line.
fn flag<'a>(line: &'a str, flag: &str) -> &'a str {
    let mut words = line.split_whitespace();
    words.find(|w| *w == flag).expect("flag printed");
    words.next().expect("flag value")
}

/// Does what the printed `hubble observe --server ... --tls ...` line for `node` would:
/// connects with those files and that server name, and returns the nodes of the flows.
async fn flows_through_printed_command(line: &str) -> BTreeSet<String> {
    let read = |path: &str| std::fs::read(path).expect("printed file exists");
    assert!(line.contains(" --tls "), "{line}");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(flag(line, "--tls-ca-cert-files"))))
        .identity(Identity::from_pem(
            read(flag(line, "--tls-client-cert-file")),
            read(flag(line, "--tls-client-key-file")),
        ))
        .domain_name(flag(line, "--tls-server-name"));
    let channel = Endpoint::from_shared(format!("https://{}", flag(line, "--server")))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("the agent accepts the printed TLS settings");
    let request = GetFlowsRequest {
        number: 20,
        ..Default::default()
    };
    let mut stream = ObserverClient::new(channel)
        .get_flows(request)
        .await
        .expect("get flows")
        .into_inner();
    let mut nodes = BTreeSet::new();
    while let Some(message) = stream.message().await.expect("flow stream") {
        if let Some(ResponseTypes::Flow(flow)) = message.response_types {
            nodes.insert(flow.node_name);
        }
    }
    nodes
}

#[test]
fn demo_once_prints_flows_from_both_nodes_through_the_relay_and_leaves_nothing() {
    let _lock = one_demo_at_a_time();
    let mut demo = DemoRun::start(&["--once", "--duration", "6s"]);
    assert!(
        demo.read_until(Duration::from_secs(60), |l| l.starts_with("Agent and relay logs:")),
        "no banner: {:?}",
        demo.wait(Duration::from_secs(30))
    );
    let footprint = Footprint::of(&demo);
    footprint.assert_complete();
    // While the demo runs, ask its relay the way `hubble observe -o json` would.
    let workloads = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(workloads_seen(&demo.relay_address, Duration::from_secs(6)));
    let (status, stdout, stderr) = demo.wait(Duration::from_secs(60));
    assert!(status.success(), "demo failed:\n{stdout}\n{stderr}");

    // Flows through the relay name the workloads from the demo's manifests.
    for expected in [
        "Deployment/frontend",
        "Deployment/backend",
        "Deployment/coredns",
        "StatefulSet/db",
    ] {
        assert!(workloads.contains(expected), "{expected} not among {workloads:?}");
    }

    let has = |needle: &str| stdout.lines().any(|line| line.contains(needle));
    assert!(has("NODE_CONNECTED: node-a, node-b"), "{stdout}");
    // Kubernetes names from the demo's manifests: pods with namespaces, identities.
    assert!(has("shop/frontend-7d4b9c6f5-q2x8l:"), "flows carry pod names: {stdout}");
    assert!(has("-> kube-system/coredns-6f9c8d7b5-h4k2n:53 (ID:"), "{stdout}");
    assert!(has("-> shop/db-0 (ID:"), "{stdout}");
    // HTTP frontend (node-a) -> backend (node-b): seen leaving one node and entering the other.
    let backend = "shop/backend-5c8d7b9f4-m7p3z";
    assert!(has(&format!("-> {backend}:8080 (ID:")), "{stdout}");
    let has_both = |a: &str, b: &str| stdout.lines().any(|line| line.contains(a) && line.contains(b));
    assert!(
        has_both(":8080 (ID:", "from-endpoint FORWARDED (TCP Flags: SYN)"),
        "{stdout}"
    );
    assert!(
        has_both(":8080 (ID:", "to-endpoint FORWARDED (TCP Flags: SYN)"),
        "{stdout}"
    );
    assert!(
        has_both(":8080 (ID:", "from-endpoint FORWARDED (TCP Flags: SYN, ACK)"),
        "{stdout}"
    );
    // The same calls as L7 flows, reported once (by the frontend's node), with status codes.
    assert!(
        has_both("http-request FORWARDED (HTTP/1.1 GET http://", ":8080/)"),
        "{stdout}"
    );
    assert!(has("http-response FORWARDED (HTTP/1.1 200 "), "{stdout}");
    assert!(
        has_both("http-response FORWARDED (HTTP/1.1 404 ", ":8080/old-page))"),
        "{stdout}"
    );
    assert!(
        has("dns-request FORWARDED (DNS Query backend.shop.svc.cluster.local. A)"),
        "{stdout}"
    );
    assert!(has("dns-response FORWARDED (DNS Answer"), "{stdout}");
    assert!(has("FORWARDED (ICMPv4 EchoRequest)"), "{stdout}");
    assert!(has("FORWARDED (ICMPv4 EchoReply)"), "{stdout}");
    // ping(8) reads replies on a raw socket; the kernel still frees them as NO_SOCKET.
    assert!(
        !has("DROPPED (ICMPv4 EchoReply"),
        "a successful ping shown as dropped: {stdout}"
    );
    assert!(
        has_both(
            &format!("{backend}:9000 (ID:"),
            "policy-denied DROPPED (TCP Flags: SYN (kernel drop reason: NETFILTER_DROP))"
        ),
        "{stdout}"
    );

    assert_nothing_left(&demo, &footprint);
}

#[test]
fn demo_follows_until_sigint_serves_the_printed_agent_commands_exits_0_and_leaves_nothing() {
    let _lock = one_demo_at_a_time();
    let mut demo = DemoRun::start(&[]);
    let flow = |line: &str| line.contains(" FORWARDED (") || line.contains(" DROPPED (");
    assert!(
        demo.read_until(Duration::from_secs(60), flow),
        "no flows printed: {:?}",
        demo.wait(Duration::from_secs(30))
    );
    let footprint = Footprint::of(&demo);
    footprint.assert_complete();

    // Each agent is reachable the way the banner says.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for node in ["node-a", "node-b"] {
        let tls_line = demo
            .stdout_line(&format!("  {node}: hubble observe --server 10."))
            .unwrap_or_else(|| panic!("no TLS command for {node}: {:#?}", demo.stdout))
            .to_owned();
        let nodes = runtime.block_on(flows_through_printed_command(&tls_line));
        assert_eq!(nodes, BTreeSet::from([node.to_owned()]), "{tls_line}");
        let socket_line = demo
            .stdout_line(&format!("  {node}: hubble observe --server unix://"))
            .unwrap_or_else(|| panic!("no socket command for {node}: {:#?}", demo.stdout));
        let socket = flag(socket_line, "--server").trim_start_matches("unix://");
        let kind = std::fs::metadata(socket).expect("printed socket exists").file_type();
        assert!(kind.is_socket(), "{socket}");
    }

    // node-a's agent, where the frontend's HTTP calls are reported, scraped at the
    // address the banner prints.
    let metrics_line = demo
        .stdout_line("  node-a: curl http://")
        .unwrap_or_else(|| panic!("no metrics address for node-a: {:#?}", demo.stdout));
    let url = flag(metrics_line, "curl");
    let address: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .expect("printed metrics address");
    let mut last = String::new();
    let scraped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("a 200 in the http metrics", Duration::from_secs(20), || {
            last = get(address, "/metrics")?;
            (total(&last, "hubble_http_requests_total", &[r#"status="200""#]) > 0.0).then(|| last.clone())
        })
    }));
    let text = scraped.unwrap_or_else(|_| panic!("{url}: no 200 series; last scrape:\n{last}"));
    assert!(total(&text, "hubble_flows_processed_total", &[]) > 0.0, "{text}");
    let ok = samples(&text, "hubble_http_requests_total")
        .into_iter()
        .find(|line| line.contains(r#"status="200""#))
        .expect("a 200 series");
    // The handler list of Cilium's example: the client's namespace and workload name the series.
    assert!(
        ok.contains(r#"source_namespace="shop",source_workload="frontend""#) && ok.contains(r#"method="GET""#),
        "{ok}"
    );

    demo.signal(libc::SIGINT);
    let (status, stdout, stderr) = demo.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(0), "after SIGINT:\n{stdout}\n{stderr}");
    assert_nothing_left(&demo, &footprint);
}

#[test]
fn demo_stopped_by_sigterm_during_setup_leaves_nothing() {
    let _lock = one_demo_at_a_time();
    let mut demo = DemoRun::start(&[]);
    // Setup has begun once the demo's first namespace exists; it then still has to
    // build the pods, write certificates and start the agents and relay.
    let deadline = Instant::now() + Duration::from_secs(30);
    let namespaces = loop {
        let namespaces = namespaces_of(demo.pid());
        if !namespaces.is_empty() {
            break namespaces;
        }
        assert!(Instant::now() < deadline, "the demo created no namespace");
        assert!(matches!(demo.child.try_wait(), Ok(None)), "demo exited early");
        std::thread::sleep(Duration::from_millis(5));
    };
    demo.signal(libc::SIGTERM);
    // Seen just before the signal; what setup adds afterwards is caught by the checks
    // that look for anything of this demo's.
    let footprint = Footprint {
        namespaces,
        processes: descendants(demo.pid()),
        process_names: Vec::new(),
        bridge_links: bridge_links(),
        firewall: Vec::new(),
        files: files_in(demo.tmpdir.path()),
    };
    let (status, stdout, stderr) = demo.wait(Duration::from_secs(60));
    // 128 + SIGTERM: stopped before it was running, as the shell reports such a process.
    assert_eq!(status.code(), Some(143), "after SIGTERM:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("Sightline demo:"), "setup had finished:\n{stdout}");
    assert!(!footprint.bridge_links.is_empty(), "{footprint:#?}");
    assert_nothing_left(&demo, &footprint);
}
