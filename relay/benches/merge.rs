//! Relay throughput and added latency: real Sightline agents (ring and gRPC server,
//! synthetic flows instead of the datapath) on loopback for throughput, fake agents
//! emitting at a fixed rate for latency.
//!
//! `cargo bench -p sightline-relay --bench merge` prints one table:
//! - the sort buffer's own cost per flow, and the passthrough's read of one
//!   response against prost decoding it whole;
//! - merged flows/s from 2, 4 and 8 agents replaying their history (non-follow,
//!   everything through the sort buffer), with the rate one client gets straight
//!   from a single agent in the same run as the baseline; the client counts
//!   responses without decoding flows, so it measures the relay, not the client,
//!   and accepts 256 KiB HTTP/2 frames as the relay does from agents; one more row
//!   repeats 2 agents with a client that accepts only the default 16 KiB frames,
//!   and another 2 agents with mutual TLS between relay and agents, as deployed;
//! - relay CPU per merged flow from 2 agents of 65 534 flows (~760 bytes) each,
//!   once from Sightline agents (many responses per HTTP/2 frame) and once from
//!   agents framing one response per frame as Hubble's Go agents do;
//! - added latency (receive time − flow time) p50/p99 in follow mode at a fixed rate.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "merge/go_framed.rs"]
mod go_framed;
#[path = "merge/own_core.rs"]
mod own_core;

use std::time::{Duration, Instant};

use sightline_agent::app::Agent;
use sightline_agent::cli::Args;
use sightline_agent::event::{Event, EventSink};
use sightline_agent::observer::ring::{EncodeArena, Read};
use sightline_agent::synthetic;
use sightline_proto::Timestamp;
use sightline_proto::observer::{GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes};
use sightline_relay::raw::UpstreamCodec;
use support::agent::FakeAgent;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// The relay binary's allocator, so the relay runtime here allocates as it does deployed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOTAL_FLOWS: i64 = 400_000;

/// A real Sightline agent (ring + gRPC server, no datapath) holding synthetic flows.
struct UpstreamAgent {
    name: String,
    address: std::net::SocketAddr,
    _stop: tokio_util::sync::DropGuard,
}

/// Certificates for a run with mutual TLS between relay and agents, as files like
/// mounted secrets.
struct Pki {
    _dir: tempfile::TempDir,
    ca: String,
    agent_cert: String,
    agent_key: String,
    relay_cert: String,
    relay_key: String,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = support::certs::Ca::new("Sightline bench CA");
        let ca_file = ca.write_ca(dir.path(), "ca.crt");
        let agent = ca.issue(dir.path(), "agent", &["*.default.hubble-grpc.cilium.io"]);
        let relay = ca.issue(dir.path(), "relay", &["client.hubble-relay.cilium.io"]);
        let text = |p: std::path::PathBuf| p.to_str().expect("utf-8").to_owned();
        Self {
            ca: text(ca_file),
            agent_cert: text(agent.cert),
            agent_key: text(agent.key),
            relay_cert: text(relay.cert),
            relay_key: text(relay.key),
            _dir: dir,
        }
    }
}

async fn upstream_agent(name: &str, flows: i64, node_index: i64, tls: Option<&Pki>) -> UpstreamAgent {
    let capacity = (flows as usize + 1).next_power_of_two() - 1;
    let mut argv: Vec<String> = vec![
        "sightline-agent".into(),
        "--listen-address=127.0.0.1:0".into(),
        "--socket-path=".into(),
        "--k8s-disabled".into(),
        format!("--node-name={name}"),
        format!("--event-buffer-capacity={capacity}"),
    ];
    match tls {
        Some(pki) => argv.extend([
            format!("--tls-cert-file={}", pki.agent_cert),
            format!("--tls-key-file={}", pki.agent_key),
            format!("--tls-client-ca-files={}", pki.ca),
        ]),
        None => argv.push("--disable-server-tls".into()),
    }
    let args = Args::load_from(argv.into_iter().map(std::ffi::OsString::from).collect()).expect("agent args");
    let mut agent = Agent::start(&args).await.expect("agent");
    for k in 0..flows {
        // Interleaved clocks: every agent's k-th flow lands between the others'.
        let time = Timestamp::from_unix_nanos(i128::from(k) * 1_000 + i128::from(node_index));
        agent
            .sink
            .publish(Event::Flow(Box::new(synthetic::record(k as u64, name, time))));
    }
    // Agents encode each flow once, for its first reader; do that before measuring.
    let ring = agent.sink.ring();
    let mut arena = EncodeArena::default();
    for seq in ring.oldest()..ring.head() {
        if let Read::Event(entry) = ring.get(seq) {
            entry.flow_response(&mut arena);
        }
    }
    let address = agent.server.local_addr().expect("tcp address");
    let shutdown = sightline_common::shutdown::Shutdown::new();
    let stop = shutdown.clone().drop_guard();
    tokio::spawn(agent.server.run(shutdown));
    UpstreamAgent {
        name: name.to_owned(),
        address,
        _stop: stop,
    }
}

const RELAY_THREAD: &str = "relay-rt";

/// CPU seconds (user + system) used so far by the threads named `RELAY_THREAD`.
/// Read from `schedstat` (nanoseconds on the CPU) rather than `stat`, whose 10 ms
/// ticks made one tick 0.08 µs per flow in the 131 068-flow rows.
fn relay_cpu_seconds() -> f64 {
    let nanos: u64 = own_core::threads()
        .into_iter()
        .filter(|(_, name)| name == RELAY_THREAD)
        .filter_map(|(tid, _)| std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok())
        // "<time on the CPU, ns> <time waiting to run, ns> <timeslices>"
        .filter_map(|schedstat| schedstat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    nanos as f64 / 1e9
}

/// Flows merged from `count` agents sharing `TOTAL_FLOWS`.
fn per_agent_total(count: usize) -> u64 {
    TOTAL_FLOWS as u64 / count as u64 * count as u64
}

async fn agents_with_history(count: usize, tls: Option<&Pki>) -> Vec<UpstreamAgent> {
    let per_agent = TOTAL_FLOWS / count as i64;
    let mut agents = Vec::new();
    for i in 0..count {
        agents.push(upstream_agent(&format!("node-{i}"), per_agent, i as i64, tls).await);
    }
    agents
}

/// Which HTTP/2 frames the benchmark's client accepts.
#[derive(Clone, Copy, PartialEq)]
enum Frames {
    /// 256 KiB, as the relay accepts from agents.
    Large,
    /// HTTP/2's default 16 KiB, what a client that sets nothing accepts.
    Default,
}

async fn connect(address: std::net::SocketAddr) -> Channel {
    connect_with(address, Frames::Large).await
}

async fn connect_with(address: std::net::SocketAddr, frames: Frames) -> Channel {
    let endpoint = Channel::from_shared(format!("http://{address}")).expect("uri");
    let endpoint = match frames {
        Frames::Large => endpoint.max_frame_size(sightline_proto::codec::STREAM_MAX_FRAME_SIZE),
        Frames::Default => endpoint,
    };
    endpoint.connect().await.expect("connect")
}

/// Reads a whole GetFlows stream, counting flows without decoding them (the
/// relay's own upstream codec), so the client's decoding does not cap the number.
async fn drain(channel: Channel, request: GetFlowsRequest) -> (u64, Duration) {
    let started = Instant::now();
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(16 << 20);
    grpc.ready().await.expect("ready");
    let path = PathAndQuery::from_static("/observer.Observer/GetFlows");
    let mut stream = grpc
        .server_streaming(tonic::Request::new(request), path, UpstreamCodec::new())
        .await
        .expect("GetFlows")
        .into_inner();
    let mut flows = 0;
    while let Some(message) = stream.message().await.expect("stream") {
        if message.is_flow() {
            flows += 1;
        }
    }
    (flows, started.elapsed())
}

fn peers<'a>(agents: impl IntoIterator<Item = (&'a str, std::net::SocketAddr)>) -> String {
    agents
        .into_iter()
        .map(|(name, address)| format!("{name}={address}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The merge's own cost: every flow through a default-sized sort buffer (push and
/// release), 8 sources interleaved with a little jitter. Best of three passes.
fn sort_buffer_ns_per_flow() -> f64 {
    use sightline_relay::raw::RelayFlow;
    use sightline_relay::sort_buffer::SortBuffer;
    const FLOWS: usize = 2_000_000;
    let body = prost::bytes::Bytes::from(vec![0u8; 300]);
    let items: Vec<RelayFlow> = (0..FLOWS)
        .map(|i| RelayFlow::Raw {
            // Source i % 8 runs (i * 37 % 11) ns behind its neighbours.
            time: 1_700_000_000_000_000_000 + (i as i128) * 100 + ((i * 37) % 11) as i128 * (i % 8) as i128,
            is_flow: true,
            bytes: body.clone(),
        })
        .collect();
    let now = tokio::time::Instant::now();
    (0..3)
        .map(|_| {
            let mut buffer = SortBuffer::new(100, Duration::from_secs(1));
            let batch = items.clone();
            let start = Instant::now();
            let mut released = 0usize;
            for item in batch {
                released += usize::from(buffer.push(item, now).is_some());
            }
            released += buffer.drain_all().len();
            assert_eq!(released, FLOWS);
            start.elapsed().as_nanos() as f64 / FLOWS as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// What the relay's passthrough reads of one ~750-byte response (`RelayFlow::parse`)
/// against decoding it whole with prost, ns per response. Best of three passes.
fn raw_parse_vs_prost_ns() -> (f64, f64) {
    use prost::Message;
    use sightline_relay::raw::RelayFlow;
    const ROUNDS: usize = 200_000;
    let time = sightline_proto::Timestamp::from_unix_nanos(1_700_000_000_000_000_000);
    let bytes = prost::bytes::Bytes::from(go_framed::hubble_sized_response(7, "node-0", time).encode_to_vec());
    let best = |f: &dyn Fn() -> bool| {
        (0..3)
            .map(|_| {
                let start = Instant::now();
                let mut flows = 0usize;
                for _ in 0..ROUNDS {
                    flows += usize::from(std::hint::black_box(f()));
                }
                assert_eq!(flows, ROUNDS);
                start.elapsed().as_nanos() as f64 / ROUNDS as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    let raw = best(&|| RelayFlow::parse(std::hint::black_box(bytes.clone())).is_ok_and(|flow| flow.is_flow()));
    let prost = best(&|| {
        GetFlowsResponse::decode(std::hint::black_box(bytes.clone())).is_ok_and(|r| r.response_types.is_some())
    });
    (raw, prost)
}

/// A relay on `runtime` with `agents` as static peers, plaintext or mutual TLS.
async fn start_relay(
    runtime: &tokio::runtime::Runtime,
    agents: &[UpstreamAgent],
    tls: Option<&Pki>,
) -> sightline_relay::app::RunningRelay {
    let peers = peers(agents.iter().map(|a| (a.name.as_str(), a.address)));
    relay_for(runtime, peers, agents.len(), tls).await
}

/// A relay on `runtime` with `peers` (`name=address,…`), once all `count` are connected.
async fn relay_for(
    runtime: &tokio::runtime::Runtime,
    peers: String,
    count: usize,
    tls: Option<&Pki>,
) -> sightline_relay::app::RunningRelay {
    let mut args: Vec<String> = vec!["--dial-timeout".into(), "10s".into(), "--peers".into(), peers];
    match tls {
        Some(pki) => args.extend([
            "--tls-hubble-server-ca-files".into(),
            pki.ca.clone(),
            "--tls-hubble-client-cert-file".into(),
            pki.relay_cert.clone(),
            "--tls-hubble-client-key-file".into(),
            pki.relay_key.clone(),
        ]),
        None => args.push("--disable-client-tls".into()),
    }
    let relay = runtime
        .spawn(async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::relay(&args).await
        })
        .await
        .expect("relay task");
    support::until_connected(&relay, count).await;
    relay
}

/// Drains every flow of `count` agents through `relay`: flows/s and the relay's CPU
/// per flow, formatted.
async fn merged(relay: &sightline_relay::app::RunningRelay, expected: u64) -> (f64, String) {
    let cpu_before = relay_cpu_seconds();
    let (flows, took) = drain(connect(relay.api_address).await, GetFlowsRequest::default()).await;
    let relay_cpu = relay_cpu_seconds() - cpu_before;
    assert_eq!(flows, expected, "every flow arrives");
    let cpu = format!(
        "{:.2} µs = {:.2} M flows/s per relay core",
        relay_cpu / flows as f64 * 1e6,
        flows as f64 / relay_cpu / 1e6
    );
    (flows as f64 / took.as_secs_f64(), cpu)
}

fn relay_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(RELAY_THREAD)
        .enable_all()
        .build()
        .expect("relay runtime")
}

/// Flows per agent in the Go-framing comparison, as in the issue's measurement.
const GO_FRAMED_FLOWS: u64 = 65_534;

/// Relay CPU per flow from 2 agents of `GO_FRAMED_FLOWS` each, Sightline-framed
/// and Go-framed, in the same run: first with every thread on every core, then with
/// the relay's thread on a core of its own.
async fn go_framed_rows(relay_runtime: &tokio::runtime::Runtime) {
    go_framed_pair(relay_runtime, "shared cores").await;
    // The relay runtime's threads exist by now; blocking-pool threads spawned later
    // inherit the CPUs of the thread that spawns them.
    let Some(own_core) = own_core::OwnCore::pin(RELAY_THREAD) else {
        println!("| relay on a core of its own | one CPU only: not measured | — |");
        return;
    };
    go_framed_pair(relay_runtime, "relay on a core of its own").await;
    drop(own_core);
}

async fn go_framed_pair(relay_runtime: &tokio::runtime::Runtime, cores: &str) {
    let mut agents = Vec::new();
    for i in 0..2 {
        agents.push(upstream_agent(&format!("node-{i}"), GO_FRAMED_FLOWS as i64, i, None).await);
    }
    let relay = start_relay(relay_runtime, &agents, None).await;
    let (rate, relay_cpu) = merged(&relay, 2 * GO_FRAMED_FLOWS).await;
    println!(
        "| 2 Sightline agents × 65 534 flows, batched frames, {cores} | {rate:.0} flows/s, relay CPU {relay_cpu} | — |"
    );
    relay.shutdown().await;
    drop(agents);

    for tls in [None, Some(Pki::new())] {
        let agent_tls = tls.as_ref().map(|pki| go_framed::AgentTls {
            cert: pki.agent_cert.clone().into(),
            key: pki.agent_key.clone().into(),
            client_ca: pki.ca.clone().into(),
        });
        let mut go_agents = Vec::new();
        for i in 0..2 {
            let name = format!("go-{i}");
            go_agents.push(go_framed::GoFramedAgent::start(&name, GO_FRAMED_FLOWS, i, agent_tls.as_ref()).await);
        }
        let peers = peers(go_agents.iter().map(|a| (a.name.as_str(), a.address)));
        let relay = relay_for(relay_runtime, peers, go_agents.len(), tls.as_ref()).await;
        let (rate, relay_cpu) = merged(&relay, 2 * GO_FRAMED_FLOWS).await;
        println!(
            "| 2 Go-framed agents × 65 534 flows ({} bytes each), one response per frame{}, {cores} | {rate:.0} flows/s, relay CPU {relay_cpu} | — |",
            go_agents[0].mean_response_bytes,
            if tls.is_some() { ", mutual TLS 1.3" } else { "" }
        );
        relay.shutdown().await;
    }
}

#[tokio::main]
async fn main() {
    // As the binary does: with no subscriber, `tracing`'s `log` fallback runs for every
    // span h2 opens, a cost a deployed relay does not have.
    let quiet = sightline_common::logging::LogArgs {
        log_level: Some("warn".to_owned()),
        log_format: sightline_common::logging::LogFormat::Text,
    };
    quiet.init().expect("log set-up");
    println!("| measurement | value | vs baseline |");
    println!("|---|---|---|");
    // `cargo bench -p sightline-relay --bench merge -- go-framed`: only the framing rows.
    if std::env::args().any(|arg| arg == "go-framed") {
        let relay_runtime = relay_runtime();
        go_framed_rows(&relay_runtime).await;
        relay_runtime.shutdown_background();
        // Coalescing small frames must not cost latency: the follow row rides along.
        follow_latency_row().await;
        return;
    }
    println!(
        "| sort buffer (length 100), push and release | {:.1} ns/flow | — |",
        sort_buffer_ns_per_flow()
    );
    let (raw, prost) = raw_parse_vs_prost_ns();
    println!(
        "| relay's read of one ~750-byte response (time, is it a flow) | {raw:.1} ns | prost decoding it whole: {prost:.1} ns |"
    );

    let direct = agents_with_history(1, None).await;
    let (flows, took) = drain(connect(direct[0].address).await, GetFlowsRequest::default()).await;
    let baseline = flows as f64 / took.as_secs_f64();
    println!("| one agent straight to the client (baseline) | {baseline:.0} flows/s | 1.00 |");
    drop(direct);

    // The relay runs on its own one-thread runtime, so its CPU time can be read apart
    // from the agents' and the client's.
    let relay_runtime = relay_runtime();
    for count in [2, 4, 8] {
        let agents = agents_with_history(count, None).await;
        let relay = start_relay(&relay_runtime, &agents, None).await;
        let (rate, relay_cpu) = merged(&relay, per_agent_total(count)).await;
        println!(
            "| merged through the relay from {count} agents | {rate:.0} flows/s | {:.2} |",
            rate / baseline
        );
        println!("| relay CPU per merged flow, {count} agents | {relay_cpu} | — |");
        if count == 2 {
            let (flows, took) = drain(
                connect_with(relay.api_address, Frames::Default).await,
                GetFlowsRequest::default(),
            )
            .await;
            let rate = flows as f64 / took.as_secs_f64();
            println!(
                "| merged from 2 agents, client accepting only 16 KiB frames | {rate:.0} flows/s | {:.2} |",
                rate / baseline
            );
        }
        relay.shutdown().await;
        drop(agents);
    }
    // As deployed: agents serve mutual TLS 1.3 and the relay dials them with its
    // client certificate (the client still reads the relay in plaintext).
    let pki = Pki::new();
    let agents = agents_with_history(2, Some(&pki)).await;
    let relay = start_relay(&relay_runtime, &agents, Some(&pki)).await;
    let (rate, relay_cpu) = merged(&relay, per_agent_total(2)).await;
    println!(
        "| merged from 2 agents over mutual TLS 1.3 | {rate:.0} flows/s | {:.2} |",
        rate / baseline
    );
    println!("| relay CPU per merged flow, 2 agents over mutual TLS | {relay_cpu} | — |");
    relay.shutdown().await;
    drop(agents);

    go_framed_rows(&relay_runtime).await;
    relay_runtime.shutdown_background();

    follow_latency_row().await;
}

/// Added latency (receive time − flow time) p50/p99 in follow mode, 4 agents
/// emitting 1 000 flows/s each.
async fn follow_latency_row() {
    let agents: Vec<FakeAgent> = {
        let mut agents = Vec::new();
        for i in 0..4 {
            agents.push(FakeAgent::start(&format!("live-{i}"), &[]).await);
        }
        agents
    };
    let relay = support::relay(&[
        "--disable-client-tls",
        "--dial-timeout",
        "10s",
        "--peers",
        &peers(agents.iter().map(|a| (a.name.as_str(), a.address))),
    ])
    .await;
    support::until_connected(&relay, 4).await;
    let mut stream = support::client(&relay)
        .await
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("GetFlows")
        .into_inner();
    for agent in &agents {
        agent.emit_every(Duration::from_millis(1), Duration::ZERO);
    }
    let mut latencies = Vec::new();
    let window = Instant::now();
    while window.elapsed() < Duration::from_secs(5) {
        let Some(message) = stream.message().await.expect("stream") else {
            break;
        };
        if let (Some(ResponseTypes::Flow(_)), Some(time)) = (&message.response_types, message.time) {
            let sent = std::time::SystemTime::from(time);
            latencies.push(std::time::SystemTime::now().duration_since(sent).unwrap_or_default());
        }
    }
    latencies.sort();
    let rate = latencies.len() as f64 / 5.0;
    println!(
        "| added latency at {rate:.0} flows/s from 4 agents (drain timeout 1 s) | p50 {:.1} ms, p99 {:.1} ms | — |",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    relay.shutdown().await;
}
