//! Observer benchmarks: ring writes, filter evaluation and GetFlows throughput over
//! loopback TCP. `cargo bench -p sightline-agent --bench observer` prints criterion's
//! numbers and, at the end, one table beside Hubble's published figures (from
//! `../shared/reference/hubble-behaviour.md` §8: other machines, each with its source).
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use sightline_agent::app::Agent;
use sightline_agent::cli::Args;
use sightline_agent::datapath::drop_reason::DropReasonNames;
use sightline_agent::datapath::{Decoder, InterfaceInfo, InterfaceRole};
use sightline_agent::enrich::Enricher;
use sightline_agent::event::{Event, EventSink};
use sightline_agent::flow_record::FlowRecord;
use sightline_agent::observer::codec::{CountingCodec, FlowsItem};
use sightline_agent::observer::filter::{CompiledFilter, FilterSet, compile};
use sightline_agent::observer::ring;
use sightline_agent::observer::service::{NodeIdentity, ObserverService};
use sightline_agent::observer::sink::ObserverStats;
use sightline_agent::synthetic;
use sightline_bpf_common::{FlowEvent, IPPROTO_TCP, hook, kind, tcp_flags};
use sightline_proto::Timestamp;
use sightline_proto::flow::FlowFilter;
use sightline_proto::observer::GetFlowsRequest;
use sightline_proto::observer::observer_client::ObserverClient;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

#[path = "support/cluster.rs"]
mod cluster;

/// (name, ns per op or flows/s, Hubble's figure, target) rows for the summary.
static SUMMARY: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

fn record(name: &str, value: f64) {
    SUMMARY.lock().unwrap().push((name.to_owned(), value));
}

/// Best of five runs: other work on a shared machine only ever adds time.
fn time_per_op(iterations: u64, f: impl Fn()) -> f64 {
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iterations / 5 {
                f();
            }
            start.elapsed().as_nanos() as f64 / (iterations / 5) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn ring_write(c: &mut Criterion) {
    let (mut writer, _reader) = ring::ring(ring::DEFAULT_CAPACITY).unwrap();
    let event = Arc::new(ring::Entry::new(Event::flow(synthetic::flow(
        1,
        "bench",
        Timestamp::now(),
    ))));
    c.bench_function("ring write (shared Arc<Entry>)", |b| {
        b.iter(|| writer.write(black_box(event.clone())))
    });
    // The writer takes ownership of an `Arc` the pipeline made, so the entries are
    // made before timing. Each write gets its own entry, as in the agent: the one it
    // replaces is the last reference to a flow written a ring ago, and freeing that
    // flow is part of the cost (clones of one shared `Arc` would never free anything).
    let template = Event::flow(synthetic::flow(1, "bench", Timestamp::now()));
    let entries = |count: usize| -> Vec<Arc<ring::Entry>> {
        (0..count)
            .map(|_| Arc::new(ring::Entry::new(template.clone())))
            .collect()
    };
    for entry in entries(ring::DEFAULT_CAPACITY) {
        writer.write(entry);
    }
    let mut ns = f64::INFINITY;
    for _ in 0..3 {
        let batch = entries(100 * ring::DEFAULT_CAPACITY);
        let count = batch.len();
        let start = Instant::now();
        for entry in batch {
            writer.write(black_box(entry));
        }
        ns = ns.min(start.elapsed().as_nanos() as f64 / count as f64);
    }
    record("ring write, ns/event", ns);
}

/// What the first reader of each flow pays: its GetFlowsResponse encoding.
fn encode(_: &mut Criterion) {
    let synthetic = (0..100_000).map(|i| Event::Flow(Box::new(synthetic::record(i, "bench", Timestamp::now()))));
    record("encode a flow response (once per flow), ns", encode_cost(synthetic));
    record(
        "encode a datapath flow response (decoded + enriched), ns",
        encode_cost(datapath_flows(100_000)),
    );
}

/// ns per first `flow_response` of ring entries holding `events`, in a running
/// agent's steady state: a default-sized ring's worth at a time, its memory reused
/// from the entries it overwrote (fresh pages from the kernel would double the cost).
fn encode_cost(events: impl IntoIterator<Item = Event>) -> f64 {
    let events: Vec<Event> = events.into_iter().collect();
    let mut spent = std::time::Duration::ZERO;
    for _ in 0..2 {
        for window in events.chunks(4095) {
            let entries: Vec<ring::Entry> = window.iter().cloned().map(ring::Entry::new).collect();
            let mut arena = ring::EncodeArena::default();
            let start = Instant::now();
            for entry in &entries {
                black_box(entry.flow_response(&mut arena));
            }
            spent += start.elapsed();
        }
    }
    spent.as_nanos() as f64 / (2 * events.len()) as f64
}

fn port_filter(port: u32) -> FlowFilter {
    FlowFilter {
        destination_port: vec![port.to_string()],
        ..Default::default()
    }
}

fn proto_port_filter(port: u32) -> FlowFilter {
    FlowFilter {
        protocol: vec!["tcp".into()],
        destination_port: vec![port.to_string()],
        ..Default::default()
    }
}

/// Two fields that differ from filter to filter: nothing to merge.
fn pod_port_filter(i: u32) -> FlowFilter {
    FlowFilter {
        source_pod: vec![format!("ns{i}/pod")],
        destination_port: vec![i.to_string()],
        ..Default::default()
    }
}

fn filters(c: &mut Criterion) {
    // Flow 2 goes to port 8080: no filter below except the first set matches it.
    let flow = FlowRecord::new(synthetic::flow(2, "bench", Timestamp::now()));
    let one = FilterSet::compile(&[port_filter(8080)], &[]).unwrap();
    let hundred_ports = FilterSet::compile(&(1..=100).map(port_filter).collect::<Vec<_>>(), &[]).unwrap();
    let hundred_l4 = FilterSet::compile(&(1..=100).map(proto_port_filter).collect::<Vec<_>>(), &[]).unwrap();
    let hundred_distinct = FilterSet::compile(&(1..=100).map(pod_port_filter).collect::<Vec<_>>(), &[]).unwrap();
    assert!(one.matches_flow(&flow) && !hundred_ports.matches_flow(&flow) && !hundred_l4.matches_flow(&flow));
    assert!(!hundred_distinct.matches_flow(&flow));
    let mut group = c.benchmark_group("filter");
    group.bench_function("one port filter", |b| {
        b.iter(|| black_box(&one).matches_flow(black_box(&flow)))
    });
    group.bench_function("100 port filters", |b| {
        b.iter(|| black_box(&hundred_ports).matches_flow(black_box(&flow)))
    });
    group.bench_function("100 tcp+port filters", |b| {
        b.iter(|| black_box(&hundred_l4).matches_flow(black_box(&flow)))
    });
    group.bench_function("100 pod+port filters (unmergeable)", |b| {
        b.iter(|| black_box(&hundred_distinct).matches_flow(black_box(&flow)))
    });
    group.finish();
    let n = 20_000_000;
    record(
        "one port filter, ns",
        time_per_op(n, || _ = black_box(black_box(&one).matches_flow(black_box(&flow)))),
    );
    record(
        "100 port filters, ns",
        time_per_op(n / 10, || {
            _ = black_box(black_box(&hundred_ports).matches_flow(black_box(&flow)))
        }),
    );
    record(
        "100 tcp+port filters, ns",
        time_per_op(n / 10, || {
            _ = black_box(black_box(&hundred_l4).matches_flow(black_box(&flow)))
        }),
    );
    record(
        "100 pod+port filters (unmergeable), ns",
        time_per_op(n / 10, || {
            _ = black_box(black_box(&hundred_distinct).matches_flow(black_box(&flow)))
        }),
    );
    // The same filters tried one by one, as before the port index: the baseline.
    let one_by_one: Vec<CompiledFilter> = (1..=100).map(|i| compile(&pod_port_filter(i)).unwrap()).collect();
    record(
        "100 pod+port filters tried one by one (baseline), ns",
        time_per_op(n / 10, || {
            _ = black_box(black_box(&one_by_one).iter().any(|f| f.matches_flow(black_box(&flow))))
        }),
    );
    // Flow 0 goes to port 80, which one of those filters names: that one is tried.
    let to_port_80 = FlowRecord::new(synthetic::flow(0, "bench", Timestamp::now()));
    assert!(!hundred_distinct.matches_flow(&to_port_80));
    record(
        "100 pod+port filters, one naming the flow's port, ns",
        time_per_op(n / 10, || {
            _ = black_box(black_box(&hundred_distinct).matches_flow(black_box(&to_port_80)))
        }),
    );
}

fn cel_filter(expression: &str) -> FilterSet {
    let filter = FlowFilter {
        experimental: Some(sightline_proto::flow::flow_filter::Experimental {
            cel_expression: vec![expression.to_owned()],
        }),
        ..Default::default()
    };
    FilterSet::compile(&[filter], &[]).unwrap()
}

/// A typical CEL filter against the native filter that says the same: the
/// baseline, measured in the same run.
fn cel_filters(c: &mut Criterion) {
    let flow = FlowRecord::new(synthetic::flow(2, "bench", Timestamp::now()));
    let namespace = flow.source().unwrap().namespace.clone();
    let typical = cel_filter(&format!(
        "_flow.source.namespace == {namespace:?} && _flow.l4.TCP.destination_port == 8080u"
    ));
    let native = FilterSet::compile(
        &[FlowFilter {
            source_pod: vec![format!("{namespace}/")],
            destination_port: vec!["8080".into()],
            ..Default::default()
        }],
        &[],
    )
    .unwrap();
    let label = cel_filter(r#"_flow.source.labels.exists(l, l == "k8s:app=app2")"#);
    let generic = cel_filter("_flow.l4.TCP.flags.ACK");
    // Flow 0 goes to port 80: the typical expression does not match it.
    let other = FlowRecord::new(synthetic::flow(0, "bench", Timestamp::now()));
    assert!(typical.matches_flow(&flow) && native.matches_flow(&flow) && !typical.matches_flow(&other));
    assert!(label.matches_flow(&flow) && generic.matches_flow(&flow));
    let mut group = c.benchmark_group("cel filter");
    group.bench_function("namespace && port, matching", |b| {
        b.iter(|| black_box(&typical).matches_flow(black_box(&flow)))
    });
    group.bench_function("namespace && port, not matching", |b| {
        b.iter(|| black_box(&typical).matches_flow(black_box(&other)))
    });
    group.finish();
    let n = 10_000_000;
    let per_flow = |filter: &FilterSet, flow: &FlowRecord, n: u64| {
        time_per_op(n, || _ = black_box(black_box(filter).matches_flow(black_box(flow))))
    };
    record(
        "native namespace+port filter (baseline), ns",
        per_flow(&native, &flow, n),
    );
    record("CEL namespace && port, matching, ns", per_flow(&typical, &flow, n));
    record("CEL namespace && port, not matching, ns", per_flow(&typical, &other, n));
    record("CEL labels.exists(l, l == ...), ns", per_flow(&label, &flow, n));
    record(
        "CEL on a field without a direct read (tcp flag, complete flow decoded), ns",
        per_flow(&generic, &flow, n / 100),
    );
}

const RING: usize = (1 << 18) - 1;

/// Streams the whole ring to `clients` concurrent clients; returns flows/s over all of them.
/// `decode`: clients decode every response (as the hubble CLI does) or only count them.
async fn stream_ring(address: std::net::SocketAddr, clients: usize, decode: bool) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(async move {
            let channel = Channel::from_shared(format!("http://{address}"))
                .unwrap()
                .max_frame_size(sightline_proto::codec::STREAM_MAX_FRAME_SIZE)
                .connect()
                .await
                .unwrap();
            let mut n = 0u64;
            if decode {
                let client = ObserverClient::new(channel).max_decoding_message_size(16 << 20);
                let mut stream = client
                    .clone()
                    .get_flows(GetFlowsRequest::default())
                    .await
                    .unwrap()
                    .into_inner();
                while stream.message().await.unwrap().is_some() {
                    n += 1;
                }
            } else {
                let mut grpc = tonic::client::Grpc::new(channel);
                grpc.ready().await.unwrap();
                let path = PathAndQuery::from_static("/observer.Observer/GetFlows");
                let request = tonic::Request::new(GetFlowsRequest::default());
                let mut stream = grpc
                    .server_streaming(request, path, CountingCodec::new())
                    .await
                    .unwrap()
                    .into_inner();
                while stream.message().await.unwrap().is_some() {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, (RING * clients) as u64);
    total as f64 / start.elapsed().as_secs_f64()
}

/// Median time of a `hubble observe --last 20`-sized request (GetFlows number=20)
/// on an open connection, in microseconds.
async fn last_20_latency_us(address: std::net::SocketAddr) -> f64 {
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ObserverClient::new(channel);
    let mut times = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let request = GetFlowsRequest {
            number: 20,
            ..Default::default()
        };
        let mut stream = client.get_flows(request).await.unwrap().into_inner();
        let mut n = 0;
        while stream.message().await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 20);
        times.push(start.elapsed());
    }
    times.sort();
    times[times.len() / 2].as_secs_f64() * 1e6
}

/// What one GetFlows stream costs the server per flow before tonic and the network:
/// the cursor walking the ring and handing out cached responses. Best of 5 passes
/// over the whole ring, after one pass (responses are already encoded
/// when it runs).
async fn stream_cost(ring: ring::Ring) -> f64 {
    use futures_util::StreamExt;
    let entries = ring.head() - ring.oldest();
    let service = ObserverService::new(
        ring,
        Arc::new(ObserverStats::default()),
        NodeIdentity {
            node_name: "bench".into(),
            cluster_name: "default".into(),
            address: String::new(),
            tls_server_name: None,
        },
        Duration::from_secs(1),
    );
    let mut best = f64::MAX;
    let mut arena = ring::EncodeArena::default();
    for pass in 0..6 {
        let request = tonic::Request::new(GetFlowsRequest::default());
        let mut stream = service.flows(request).unwrap().into_inner();
        let start = Instant::now();
        let mut bytes = 0;
        while let Some(item) = stream.next().await {
            if let Ok(FlowsItem::Shared(entry)) = item {
                bytes += entry.flow_response(&mut arena).map_or(0, |b| b.len());
            }
        }
        black_box(bytes);
        if pass > 0 {
            best = f64::min(best, start.elapsed().as_nanos() as f64 / entries as f64);
        }
    }
    best
}

fn get_flows(c: &mut Criterion) {
    // The agent and its clients get one worker thread each, one per core of this
    // 2-core machine, as with a client on another node: sharing two workers, a
    // client's task and the stream it read took turns on one thread, and a third
    // busy thread had no core of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-agent")
        .enable_all()
        .build()
        .unwrap();
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();
    let (address, mut agent_guard) = runtime.block_on(async {
        let argv: Vec<OsString> = [
            "bench",
            "--listen-address=127.0.0.1:0",
            "--socket-path=",
            "--disable-server-tls",
            "--k8s-disabled",
            &format!("--event-buffer-capacity={RING}"),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let mut agent = Agent::start(&Args::load_from(argv).unwrap()).await.unwrap();
        for i in 0..RING as u64 {
            agent
                .sink
                .publish(Event::Flow(Box::new(synthetic::record(i, "bench", Timestamp::now()))));
        }
        let address = agent.server.local_addr().unwrap();
        let shutdown = sightline_common::shutdown::Shutdown::new();
        let stop = shutdown.clone().drop_guard();
        tokio::spawn(agent.server.run(shutdown));
        (address, (stop, agent.sink))
    });
    let mut group = c.benchmark_group("GetFlows over loopback");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(RING as u64));
    // The first read encodes every flow once; later reads copy the cached bytes.
    let fresh = client_runtime.block_on(stream_ring(address, 1, false));
    record("GetFlows to 1 counting client, first read (encodes), flows/s", fresh);
    record(
        "GetFlows stream, server side without the network (cached), ns/flow",
        runtime.block_on(stream_cost(agent_guard.1.ring())),
    );
    for (clients, decode) in [(1usize, false), (10, false), (1, true)] {
        let label = if decode { "decoding" } else { "counting" };
        group.bench_function(format!("{clients} {label} client(s), whole ring"), |b| {
            b.iter_custom(|iterations| {
                let start = Instant::now();
                for _ in 0..iterations {
                    client_runtime.block_on(stream_ring(address, clients, decode));
                }
                start.elapsed() / clients as u32
            })
        });
        let best = (0..3)
            .map(|_| client_runtime.block_on(stream_ring(address, clients, decode)))
            .fold(0.0, f64::max);
        record(&format!("GetFlows to {clients} {label} client(s), flows/s"), best);
    }
    group.finish();
    record(
        "GetFlows number=20 on an open connection, median of 200, us",
        client_runtime.block_on(last_20_latency_us(address)),
    );

    // A running agent's ring is full and recycles memory: the flows above are
    // replaced by as many new ones, and the first read of those encodes again.
    // Median of five rounds: one read is a single sample on a noisy VM.
    let mut refilled: Vec<f64> = (1..=5u64)
        .map(|round| {
            let first = round * RING as u64;
            for i in first..first + RING as u64 {
                agent_guard
                    .1
                    .publish(Event::Flow(Box::new(synthetic::record(i, "bench", Timestamp::now()))));
            }
            client_runtime.block_on(stream_ring(address, 1, false))
        })
        .collect();
    refilled.sort_by(f64::total_cmp);
    record(
        "GetFlows to 1 counting client, first read of a refilled ring (encodes, median of 5), flows/s",
        refilled[2],
    );

    // What an agent really holds: datapath records, decoded and enriched, whose text
    // fields are formatted on this first read.
    let events = datapath_flows(RING);
    // gRPC message bytes per flow: the response plus its 5-byte length prefix.
    let sample = &events[..10_000];
    let wire_bytes = sample
        .iter()
        .map(|e| {
            let entry = ring::Entry::new(e.clone());
            entry
                .flow_response(&mut ring::EncodeArena::default())
                .map_or(0, |b| b.len() + 5)
        })
        .sum::<usize>() as f64
        / sample.len() as f64;
    for event in events {
        agent_guard.1.publish(event);
    }
    let fresh = client_runtime.block_on(stream_ring(address, 1, false));
    record(
        "GetFlows to 1 counting client, first read of datapath flows (encodes), flows/s",
        fresh,
    );
    let cached = (0..3)
        .map(|_| client_runtime.block_on(stream_ring(address, 1, false)))
        .fold(0.0, f64::max);
    record("GetFlows to 1 counting client, datapath flows, flows/s", cached);
    record("datapath flow on the wire, bytes", wire_bytes);
    let streamed = cached * wire_bytes * 8.0 / 1e9;
    record("GetFlows to 1 counting client, datapath flows, Gbit/s", streamed);
    // A reference for the transport, same run: what iperf3 moves over loopback in
    // one stream with its default 128 KiB writes. Not a hard ceiling: GetFlows
    // with 256 KiB frames has matched or passed it.
    if let Some(reference) = loopback_tcp_gbits() {
        record("loopback TCP, iperf3 one stream (reference), Gbit/s", reference);
        record("datapath GetFlows / iperf3, %", 100.0 * streamed / reference);
    }
}

/// Median of three 3-second iperf3 runs over 127.0.0.1, when iperf3 is installed.
fn loopback_tcp_gbits() -> Option<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port()
        .to_string();
    let mut server = std::process::Command::new("iperf3")
        .args(["-s", "-B", "127.0.0.1", "-p", &port])
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let mut runs: Vec<f64> = (0..3)
        .filter_map(|_| {
            let out = std::process::Command::new("iperf3")
                .args(["-c", "127.0.0.1", "-p", &port, "-t", "3", "-J"])
                .output()
                .ok()?;
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            report["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .map(|b| b / 1e9)
        })
        .collect();
    let _ = server.kill();
    let _ = server.wait();
    runs.sort_by(f64::total_cmp);
    runs.get(runs.len() / 2).copied()
}

struct Discard;

impl EventSink for Discard {
    fn publish(&mut self, event: Event) {
        black_box(event);
    }
}

/// `count` TCP records between pods of a 10 000-pod cluster, through the decoder
/// and the enricher as the agent's pipeline runs them.
fn datapath_flows(count: usize) -> Vec<Event> {
    const PODS: u32 = 10_000;
    let mut enricher = Enricher::new(cluster::build(PODS), Discard);
    let mut decoder = Decoder::new("node-0".into(), DropReasonNames::default());
    decoder.set_interface(
        7,
        Some(InterfaceInfo {
            name: "lxc0123".into(),
            role: InterfaceRole::Endpoint,
        }),
    );
    let v4 = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => v4.octets(),
        std::net::IpAddr::V6(_) => unreachable!("the simulated cluster is IPv4"),
    };
    (0..count as u32)
        .map(|i| {
            let mut event = FlowEvent {
                kind: kind::TRACE,
                timestamp_ns: u64::from(i) * 1000,
                tcp_flags: if i % 3 == 0 { tcp_flags::SYN } else { tcp_flags::ACK },
                eth_src: [2, 0, 0, 0, 0, 1],
                eth_dst: [2, 0, 0, 0, 0, 2],
                ..Default::default()
            };
            event.key.src_addr[..4].copy_from_slice(&v4(cluster::pod_ip(i * 7 % PODS)));
            event.key.dst_addr[..4].copy_from_slice(&v4(cluster::pod_ip(i * 13 % PODS)));
            event.key.src_port = 30_000 + (i % 20_000) as u16;
            event.key.dst_port = [80, 443, 8080, 5432][(i % 4) as usize];
            event.key.protocol = IPPROTO_TCP;
            event.key.ip_version = 4;
            event.key.ifindex = 7;
            event.key.hook = hook::TC_INGRESS;
            let bytes = sightline_bpf_common::record_bytes(&event);
            let Event::Flow(mut record) = decoder.decode(bytes).unwrap() else {
                unreachable!("a trace record decodes to a flow")
            };
            enricher.enrich(&mut record);
            Event::Flow(record)
        })
        .collect()
}

fn summary() {
    let hubble = [
        (
            "ring write, ns/event",
            "6.5 (hubble PR 174, 32-thread workstation); ~20 (cilium PR 14178)",
            "<= 10",
        ),
        (
            "one port filter, ns",
            "17-19 for protocol+port (cilium PR 46896)",
            "<= 5",
        ),
        ("100 port filters, ns", "-", "<= 300"),
        ("100 tcp+port filters, ns", "1400-1500 (cilium PR 46896)", "<= 300"),
        ("100 pod+port filters (unmergeable), ns", "-", "<= 300"),
        ("100 pod+port filters, one naming the flow's port, ns", "-", "<= 300"),
        (
            "CEL namespace && port, matching, ns",
            "~900 (issue 18); 2600-2700 (cilium PR 46896)",
            "<= 300",
        ),
        (
            "CEL namespace && port, not matching, ns",
            "~900 (issue 18); 2600-2700 (cilium PR 46896)",
            "<= 300",
        ),
        (
            "GetFlows to 1 counting client, first read (encodes), flows/s",
            "-",
            ">= 2M",
        ),
        (
            "GetFlows to 1 counting client, first read of a refilled ring (encodes, median of 5), flows/s",
            "-",
            ">= 2M",
        ),
        ("GetFlows to 1 counting client(s), flows/s", "-", ">= 2M"),
        (
            "GetFlows to 1 counting client, first read of datapath flows (encodes), flows/s",
            "-",
            ">= 2M",
        ),
        ("GetFlows to 1 counting client, datapath flows, flows/s", "-", ">= 2M"),
        ("GetFlows to 10 counting client(s), flows/s", "-", "-"),
        ("GetFlows to 1 decoding client(s), flows/s", "-", "-"),
    ];
    println!("\n| measurement | sightline | Hubble (published, other machines) | target |\n|---|---|---|---|");
    for (name, value) in SUMMARY.lock().unwrap().iter() {
        let (_, hubble, target) = hubble
            .iter()
            .find(|(n, _, _)| n == name)
            .copied()
            .unwrap_or(("", "-", "-"));
        let shown = if name.ends_with("flows/s") {
            format!("{:.2} M", value / 1e6)
        } else {
            format!("{value:.1}")
        };
        println!("| {name} | {shown} | {hubble} | {target} |");
    }
}

criterion_group!(benches, encode, ring_write, filters, cel_filters, get_flows);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
