//! Issue 15's process test: two agents and the relay with mutual TLS from
//! certificates the operator's issuing code writes to files. One `hubble`-style
//! follow stream stays open through the relay while every leaf is re-issued
//! several times and then the CA is rotated with the operator's overlap steps
//! (short validities, real clock); after every step the stream still carries
//! flows from both nodes, a new client connection succeeds, and each server
//! presents the leaf now in its files. Then the agents' `--config` file and
//! metrics list change and the running agents apply them, stream still open.

#[allow(dead_code)]
mod binaries;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use binaries::{binary, free_port};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sightline_common::tls::{KeyPairFiles, client_config};
use sightline_e2e::demo::Process;
use sightline_operator::tls::Lifetimes;
use sightline_operator::tls::files::{CertificateFiles, FileIssuer};
use sightline_operator::tls::plan::TlsPlan;
use sightline_operator::tls::rotation::CaEvent;
use sightline_proto::observer::get_flows_response::ResponseTypes;
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, ServerStatusRequest};
use time::OffsetDateTime;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

const CLUSTER: &str = "default";
const NODES: [&str; 2] = ["node-0", "node-1"];
/// Any name under `*.hubble-relay.cilium.io`, as Hubble UI and the CLI use.
const RELAY_SERVER_NAME: &str = "ui.hubble-relay.cilium.io";
/// Long enough for a process to notice changed files (they poll every 2 s) and
/// for the test to check everything before the next step.
const STEP_DEADLINE: Duration = Duration::from_secs(15);

/// Short validities on the real clock: leaves are renewed every 8 s, the CA's
/// rotation starts 32 s after it was issued, each overlap step waits 3 s.
fn lifetimes() -> Lifetimes {
    Lifetimes {
        ca_validity: Duration::from_secs(48),
        cert_validity: Duration::from_secs(16),
        renew_before: Duration::from_secs(8),
        propagation: Duration::from_secs(3),
    }
}

struct Cluster {
    dir: PathBuf,
    files: CertificateFiles,
    agent_ports: Vec<u16>,
    metrics_ports: Vec<u16>,
    relay_port: u16,
}

impl Cluster {
    fn agent(&self, i: usize) -> Process {
        let node = NODES[i];
        let mut command = Command::new(binary("sightline-agent"));
        command
            .args([
                "--k8s-disabled",
                "--node-name",
                node,
                "--synthetic-flows-per-second",
                "100",
            ])
            .args(["--listen-address", &format!("127.0.0.1:{}", self.agent_ports[i])])
            .args(["--metrics-server", &format!("127.0.0.1:{}", self.metrics_ports[i])])
            .args(["--tls-reload-interval", "500ms"])
            .arg("--socket-path")
            .arg(self.dir.join(format!("{node}.sock")))
            .arg("--config")
            .arg(self.config_file())
            .arg("--dynamic-metrics-config-path")
            .arg(self.metrics_file())
            .arg("--tls-cert-file")
            .arg(&self.files.agent_cert)
            .arg("--tls-key-file")
            .arg(&self.files.agent_key)
            .arg("--tls-client-ca-files")
            .arg(&self.files.ca);
        Process::spawn(node, command, &self.dir).expect("agent starts")
    }

    fn relay(&self) -> Process {
        let peers = NODES
            .iter()
            .zip(&self.agent_ports)
            .map(|(node, port)| format!("{node}=127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut command = Command::new(binary("sightline-relay"));
        command
            .args(["--listen-address", &format!("127.0.0.1:{}", self.relay_port)])
            .args(["--peers", &peers, "--retry-timeout", "1s"])
            .args(["--health-listen-address", "", "--metrics-listen-address", ""])
            .arg("--tls-hubble-server-ca-files")
            .arg(&self.files.ca)
            .arg("--tls-hubble-client-cert-file")
            .arg(&self.files.relay_client_cert)
            .arg("--tls-hubble-client-key-file")
            .arg(&self.files.relay_client_key)
            .arg("--tls-relay-server-cert-file")
            .arg(&self.files.relay_server_cert)
            .arg("--tls-relay-server-key-file")
            .arg(&self.files.relay_server_key)
            .arg("--tls-relay-client-ca-files")
            .arg(&self.files.ca);
        Process::spawn("relay", command, &self.dir).expect("relay starts")
    }

    fn config_file(&self) -> PathBuf {
        self.dir.join("agent-config.yaml")
    }

    fn metrics_file(&self) -> PathBuf {
        self.dir.join("metrics.yaml")
    }

    /// A connection as `hubble --tls` makes one: the bundle in the files now,
    /// the CLI's client certificate.
    async fn relay_client(&self) -> Result<ObserverClient<Channel>, String> {
        let read = |path: &Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.files.ca)?))
            .identity(Identity::from_pem(
                read(&self.files.cli_cert)?,
                read(&self.files.cli_key)?,
            ))
            .domain_name(RELAY_SERVER_NAME);
        let channel = Channel::from_shared(format!("https://127.0.0.1:{}", self.relay_port))
            .map_err(|e| e.to_string())?
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(3))
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        Ok(ObserverClient::new(channel))
    }

    /// The certificate a server at `port` presents to a new client with the CLI's
    /// identity that trusts the bundle in the files now.
    async fn presented(&self, port: u16, server_name: &str) -> Result<CertificateDer<'static>, String> {
        let identity = KeyPairFiles {
            cert: self.files.cli_cert.clone(),
            key: self.files.cli_key.clone(),
        };
        let config = client_config(std::slice::from_ref(&self.files.ca), Some(&identity)).map_err(|e| e.to_string())?;
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tls.get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| cert.clone().into_owned())
            .ok_or_else(|| "no certificate presented".to_owned())
    }
}

fn leaf_in_file(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces a file as the kubelet updates a mounted ConfigMap: a new file renamed over it.
fn replace(path: &Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).expect("write");
    std::fs::rename(&next, path).expect("rename");
}

/// Flows per node seen on the one follow stream, and how it ended if it did.
#[derive(Default)]
struct StreamLog {
    flows: HashMap<String, u64>,
    ended: Option<String>,
}

impl StreamLog {
    fn counts(&self) -> Vec<u64> {
        NODES
            .iter()
            .map(|node| self.flows.get(*node).copied().unwrap_or(0))
            .collect()
    }
}

/// Reads the follow stream for as long as it lasts, so it never backs up while
/// the test waits on something else.
async fn drain(mut stream: tonic::Streaming<sightline_proto::observer::GetFlowsResponse>, log: Arc<Mutex<StreamLog>>) {
    loop {
        let message = stream.message().await;
        let mut log = log.lock().expect("stream log");
        match message {
            Ok(Some(response)) => {
                if let Some(ResponseTypes::Flow(flow)) = response.response_types {
                    *log.flows.entry(flow.node_name).or_default() += 1;
                }
            }
            Ok(None) => {
                log.ended = Some("the server ended the stream".into());
                return;
            }
            Err(status) => {
                log.ended = Some(format!("{status:?}"));
                return;
            }
        }
    }
}

/// Both nodes' flows keep arriving on the stream opened at the start.
async fn assert_still_flowing(log: &Mutex<StreamLog>, step: &str) {
    let before = log.lock().expect("stream log").counts();
    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        let (now, ended) = {
            let log = log.lock().expect("stream log");
            (log.counts(), log.ended.clone())
        };
        assert!(ended.is_none(), "after {step}: the follow stream broke: {ended:?}");
        if now.iter().zip(&before).all(|(now, before)| now > before) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {step}: flows per node {before:?} -> {now:?} within {STEP_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each server presents the leaf in its files now, and a new client reaches both
/// nodes through the relay.
async fn assert_new_connections(cluster: &Cluster, step: &str) {
    let servers = NODES
        .iter()
        .zip(&cluster.agent_ports)
        .map(|(node, port)| {
            (
                *port,
                sightline_common::names::agent_server_name(node, CLUSTER),
                &cluster.files.agent_cert,
            )
        })
        .chain(std::iter::once((
            cluster.relay_port,
            RELAY_SERVER_NAME.to_owned(),
            &cluster.files.relay_server_cert,
        )));
    for (port, name, cert_file) in servers {
        let expected = leaf_in_file(cert_file);
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            let presented = cluster.presented(port, &name).await;
            if presented.as_ref() == Ok(&expected) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after {step}: {name} on port {port} does not present the leaf in {} within {STEP_DEADLINE:?}: {:?}",
                cert_file.display(),
                presented.map(|_| "an older certificate")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        let status = match cluster.relay_client().await {
            Ok(mut client) => client
                .server_status(ServerStatusRequest::default())
                .await
                .map(|response| response.into_inner())
                .map_err(|status| format!("{status:?}")),
            Err(error) => Err(error),
        };
        match status {
            Ok(status) if status.num_connected_nodes.map(|n| n.value) == Some(2) => return,
            other => assert!(
                Instant::now() < deadline,
                "after {step}: a new client through the relay: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the operator's plan on the real clock until it changes something.
async fn next_step(issuer: &mut FileIssuer) -> TlsPlan {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let plan = issuer
            .update(OffsetDateTime::now_utc())
            .expect("the operator's plan applies");
        if !plan.writes.is_empty() || plan.ca_event.is_some() {
            return plan;
        }
        assert!(
            Instant::now() < deadline,
            "the operator's plan changed nothing for 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn describe(plan: &TlsPlan) -> String {
    let mut names: Vec<&str> = plan.writes.iter().map(|write| write.name).collect();
    names.sort_unstable();
    format!("{:?}, secrets written {names:?}", plan.ca_event)
}

fn scrape(port: u16) -> String {
    let fetch = || -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    };
    fetch().unwrap_or_default()
}

async fn wait_for_metric(port: u16, what: &str, matches: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + STEP_DEADLINE;
    loop {
        let text = tokio::task::spawn_blocking(move || scrape(port)).await.expect("scrape");
        if text.lines().any(&matches) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} on :{port} within {STEP_DEADLINE:?}; last scrape:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_follow_stream_survives_leaf_and_ca_rotations_and_a_config_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut issuer = FileIssuer::new(dir.path(), CLUSTER, lifetimes()).expect("lifetimes fit");
    let first = issuer.update(OffsetDateTime::now_utc()).expect("first issuance");
    assert_eq!(first.ca_event, Some(CaEvent::Issued));
    let cluster = Cluster {
        dir: dir.path().to_owned(),
        files: issuer.files().clone(),
        agent_ports: vec![free_port(), free_port()],
        metrics_ports: vec![free_port(), free_port()],
        relay_port: free_port(),
    };
    std::fs::write(cluster.config_file(), "monitor-aggregation: medium\n").expect("config");
    std::fs::write(cluster.metrics_file(), "metrics:\n  - name: drop\n").expect("metrics");
    let mut agents: Vec<Process> = (0..NODES.len()).map(|i| cluster.agent(i)).collect();
    let _relay = cluster.relay();

    // The one stream of the whole test, opened once both nodes are connected.
    let log = Arc::new(Mutex::new(StreamLog::default()));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let opened = match cluster.relay_client().await {
            Ok(mut client) => client
                .get_flows(GetFlowsRequest {
                    follow: true,
                    ..Default::default()
                })
                .await
                .map_err(|status| format!("{status:?}")),
            Err(error) => Err(error),
        };
        if let Ok(response) = opened {
            tokio::spawn(drain(response.into_inner(), log.clone()));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no follow stream through the relay: {opened:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_still_flowing(&log, "start").await;
    assert_new_connections(&cluster, "start").await;

    // (1) and (2): the operator's steps on the real clock until the old CA is retired.
    let mut agent_leaves_before_rotation = 0;
    let mut ca_events = Vec::new();
    let mut previous_agent_leaf = leaf_in_file(&cluster.files.agent_cert);
    while !ca_events.contains(&CaEvent::OldCaRetired) {
        let plan = next_step(&mut issuer).await;
        let step = describe(&plan);
        eprintln!("step: {step}");
        let agent_leaf = leaf_in_file(&cluster.files.agent_cert);
        if agent_leaf != previous_agent_leaf && ca_events.is_empty() && plan.ca_event.is_none() {
            agent_leaves_before_rotation += 1;
        }
        previous_agent_leaf = agent_leaf;
        ca_events.extend(plan.ca_event);
        assert_still_flowing(&log, &step).await;
        assert_new_connections(&cluster, &step).await;
    }
    assert!(
        agent_leaves_before_rotation >= 2,
        "every leaf is re-issued several times before the CA rotates: {agent_leaves_before_rotation}"
    );
    assert_eq!(
        ca_events,
        [CaEvent::RotationStarted, CaEvent::SignerSwitched, CaEvent::OldCaRetired],
        "the CA rotates with the overlap steps, in order"
    );
    let bundle = std::fs::read_to_string(&cluster.files.ca).expect("ca.crt");
    assert_eq!(
        bundle.matches("BEGIN CERTIFICATE").count(),
        1,
        "only the new CA is left in ca.crt"
    );

    // The relay's client certificate: a restarted agent trusts only the new CA, so
    // the relay's reconnect succeeds only with the leaf it re-read from its files.
    agents[1].kill_hard();
    agents[1] = cluster.agent(1);
    assert_still_flowing(&log, "node-1 restarted after the CA rotation").await;

    // (3) A configuration change reaches the running agents.
    replace(&cluster.config_file(), "monitor-aggregation: low\n");
    replace(&cluster.metrics_file(), "metrics:\n  - name: drop\n  - name: flow\n");
    for port in &cluster.metrics_ports {
        wait_for_metric(*port, "successful --config reload", |line| {
            line == r#"sightline_agent_config_reloads_total{result="success"} 1"#
        })
        .await;
        wait_for_metric(
            *port,
            "hubble_flows_processed_total from the new metrics list",
            |line| line.starts_with("hubble_flows_processed_total{"),
        )
        .await;
    }
    assert_still_flowing(&log, "the configuration change").await;
    for agent in &mut agents {
        agent.check_running(dir.path()).expect("the agents keep running");
    }
}
