//! Relay throughput and added latency: real Sightline agents (ring and gRPC server,
//! synthetic flows instead of the datapath) on loopback for throughput, fake agents
//! emitting at a fixed rate for latency.
//!
//! `cargo bench -p sightline-relay --bench merge` prints one table:
//! - the sort buffer's own cost per flow;
//! - merged flows/s from 2, 4 and 8 agents replaying their history (non-follow,
//!   everything through the sort buffer), with the rate one client gets straight
//!   from a single agent in the same run as the baseline; the client counts
//!   responses without decoding flows, so it measures the relay, not the client,
//!   and accepts 256 KiB HTTP/2 frames as the relay does from agents; one more row
//!   repeats 2 agents with a client that accepts only the default 16 KiB frames;
//! - added latency (receive time − flow time) p50/p99 in follow mode at a fixed rate.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use sightline_agent::app::Agent;
use sightline_agent::cli::Args;
use sightline_agent::event::{Event, EventSink};
use sightline_agent::synthetic;
use sightline_proto::Timestamp;
use sightline_proto::observer::{GetFlowsRequest, get_flows_response::ResponseTypes};
use sightline_relay::raw::UpstreamCodec;
use support::agent::FakeAgent;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

const TOTAL_FLOWS: i64 = 400_000;

/// A real Sightline agent (ring + gRPC server, no datapath) holding synthetic flows.
struct UpstreamAgent {
    name: String,
    address: std::net::SocketAddr,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn upstream_agent(name: &str, flows: i64, node_index: i64) -> UpstreamAgent {
    let capacity = (flows as usize + 1).next_power_of_two() - 1;
    let argv: Vec<std::ffi::OsString> = [
        "sightline-agent",
        "--listen-address=127.0.0.1:0",
        "--socket-path=",
        "--disable-server-tls",
        "--k8s-disabled",
        &format!("--node-name={name}"),
        &format!("--event-buffer-capacity={capacity}"),
    ]
    .iter()
    .map(std::ffi::OsString::from)
    .collect();
    let args = Args::load_from(argv).expect("agent args");
    let mut agent = Agent::start(&args).await.expect("agent");
    for k in 0..flows {
        // Interleaved clocks: every agent's k-th flow lands between the others'.
        let time = Timestamp::from_unix_nanos(i128::from(k) * 1_000 + i128::from(node_index));
        agent
            .sink
            .publish(Event::Flow(Box::new(synthetic::record(k as u64, name, time))));
    }
    let address = agent.server.local_addr().expect("tcp address");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(agent.server.run(shutdown));
    let upstream = UpstreamAgent {
        name: name.to_owned(),
        address,
        _stop: stop,
    };
    // Agents encode each flow once, for its first reader; do that before measuring.
    drain(connect(address).await, GetFlowsRequest::default()).await;
    upstream
}

const RELAY_THREAD: &str = "relay-rt";

/// CPU seconds (user + system) used so far by the threads named `RELAY_THREAD`.
fn relay_cpu_seconds() -> f64 {
    // USER_HZ: the unit of /proc times on Linux.
    let ticks_per_second = 100.0;
    let mut ticks = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "<tid> (<comm>) <state> ..." — comm may hold spaces, so split at the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with(RELAY_THREAD) {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After comm: state is field 3 of the line, utime 14 and stime 15.
        let (utime, stime) = (fields.get(11), fields.get(12));
        ticks += utime.and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
        ticks += stime.and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
    }
    ticks as f64 / ticks_per_second
}

async fn agents_with_history(count: usize) -> Vec<UpstreamAgent> {
    let per_agent = TOTAL_FLOWS / count as i64;
    let mut agents = Vec::new();
    for i in 0..count {
        agents.push(upstream_agent(&format!("node-{i}"), per_agent, i as i64).await);
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

#[tokio::main]
async fn main() {
    println!("| measurement | value | vs baseline |");
    println!("|---|---|---|");
    println!(
        "| sort buffer (length 100), push and release | {:.1} ns/flow | — |",
        sort_buffer_ns_per_flow()
    );

    let direct = agents_with_history(1).await;
    let (flows, took) = drain(connect(direct[0].address).await, GetFlowsRequest::default()).await;
    let baseline = flows as f64 / took.as_secs_f64();
    println!("| one agent straight to the client (baseline) | {baseline:.0} flows/s | 1.00 |");
    drop(direct);

    // The relay runs on its own one-thread runtime, so its CPU time can be read apart
    // from the agents' and the client's.
    let relay_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(RELAY_THREAD)
        .enable_all()
        .build()
        .expect("relay runtime");
    for count in [2, 4, 8] {
        let agents = agents_with_history(count).await;
        let peer_list = peers(agents.iter().map(|a| (a.name.as_str(), a.address)));
        let relay = relay_runtime
            .spawn(async move {
                support::relay(&["--disable-client-tls", "--dial-timeout", "10s", "--peers", &peer_list]).await
            })
            .await
            .expect("relay task");
        support::until_connected(&relay, count).await;
        let cpu_before = relay_cpu_seconds();
        let (flows, took) = drain(connect(relay.api_address).await, GetFlowsRequest::default()).await;
        let relay_cpu = relay_cpu_seconds() - cpu_before;
        assert_eq!(
            flows,
            TOTAL_FLOWS as u64 / count as u64 * count as u64,
            "every flow arrives"
        );
        let rate = flows as f64 / took.as_secs_f64();
        println!(
            "| merged through the relay from {count} agents | {rate:.0} flows/s | {:.2} |",
            rate / baseline
        );
        println!(
            "| relay CPU per merged flow, {count} agents | {:.2} µs = {:.2} M flows/s per relay core | — |",
            relay_cpu / flows as f64 * 1e6,
            flows as f64 / relay_cpu / 1e6
        );
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
    relay_runtime.shutdown_background();

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
