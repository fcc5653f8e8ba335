//! Enrichment cost per flow with 10 000 pods and 2 000 services indexed, and index
//! memory per 1 000 pods, measured with a counting allocator. Prints one table.
//!
//! `cargo bench -p sightline-agent --bench enrich`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Instant;

use sightline_agent::datapath::ctnetlink::{ConntrackQuery, CtnetlinkError, Entry, Named, Tuple};
use sightline_agent::enrich::model::{Object, ServiceInfo, ServicePort};
use sightline_agent::enrich::{Change, Enricher, Index};
use sightline_agent::event::{Event, EventSink};
use sightline_agent::flow_record::FlowRecord;
use sightline_agent::observer::ring;
use sightline_agent::observer::sink::{ObserverStats, RingSink};
use sightline_proto::Timestamp;
use sightline_proto::flow::{Flow, Layer4, Tcp, layer4};

#[path = "support/cluster.rs"]
mod cluster;

use cluster::{build, pod_ip, service_ip};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counters
// are side effects that never touch the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const PODS: u32 = 10_000;
const SERVICES: u32 = 2_000;
const FLOWS: u32 = 1_000_000;

struct Discard;
impl EventSink for Discard {
    fn publish(&mut self, event: Event) {
        black_box(event);
    }
}

/// A flow as the datapath hands it over: proto fields plus binary addresses.
fn flow(src: IpAddr, dst: IpAddr) -> FlowRecord {
    let mut record = FlowRecord::new(Flow {
        time: Some(Timestamp::from_unix_nanos(1_700_000_000_000_000_000)),
        node_name: "node-0".into(),
        ..Flow::default()
    });
    record.addresses = Some((src, dst));
    record
}

/// The same flow with TCP ports, as the datapath decodes it.
fn tcp_flow(src: IpAddr, source_port: u32, dst: IpAddr, destination_port: u32) -> FlowRecord {
    let mut record = flow(src, dst);
    record.flow.l4 = Some(Layer4 {
        protocol: Some(layer4::Protocol::Tcp(Tcp {
            source_port,
            destination_port,
            flags: None,
        })),
    });
    record
}

const SERVICE_PORT: u16 = 80;
const BACKEND_PORT: u16 = 8080;
/// Nodes in `cluster::build`, at 192.168.0.1 and up.
const NODES: u32 = 50;

/// Every service is a NodePort one (30000 + its number).
fn node_port(service: u32) -> u16 {
    30_000 + service as u16
}

fn node_ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1 + (i % NODES) as u8))
}

/// The backend kube-proxy would have chosen for a Service address.
fn backend_of(service: IpAddr) -> IpAddr {
    let IpAddr::V4(v4) = service else {
        unreachable!("IPv4 services")
    };
    pod_ip(u32::from(v4) % PODS)
}

/// Conntrack without a kernel: every connection to a Service is DNATed to
/// `backend_of` (no masquerade); a question by reply tuple finds a connection
/// between pods that nothing translated. Only cache misses reach it.
struct KubeProxyConntrack;

impl ConntrackQuery for KubeProxyConntrack {
    fn get(&mut self, tuple: &Tuple, named: Named) -> Result<Option<Entry>, CtnetlinkError> {
        if named == Named::Reply {
            return Ok(Some(Entry {
                original: tuple.reversed(),
                reply: *tuple,
            }));
        }
        let backend = Tuple {
            protocol: tuple.protocol,
            source: tuple.source,
            source_port: tuple.source_port,
            destination: backend_of(tuple.destination),
            destination_port: BACKEND_PORT,
        };
        Ok(Some(Entry {
            original: *tuple,
            reply: backend.reversed(),
        }))
    }
}

/// ns per flow and allocations per flow over FLOWS publishes of clones of `templates`.
/// Median of `RUNS` passes.
fn measure(sink: &mut dyn EventSink, templates: &[FlowRecord]) -> (f64, f64) {
    let mut runs = Vec::with_capacity(RUNS);
    let mut allocs_per_flow = 0.0;
    for _ in 0..RUNS {
        let allocs = ALLOCATIONS.load(Ordering::Relaxed);
        let start = Instant::now();
        for i in 0..FLOWS as usize {
            let flow = templates[i % templates.len()].clone();
            sink.publish(Event::Flow(Box::new(flow)));
        }
        runs.push(start.elapsed().as_nanos() as f64 / f64::from(FLOWS));
        allocs_per_flow = (ALLOCATIONS.load(Ordering::Relaxed) - allocs) as f64 / f64::from(FLOWS);
    }
    runs.sort_by(f64::total_cmp);
    (runs[RUNS / 2], allocs_per_flow)
}

/// `Enricher::enrich` alone on records that stay in place (each pass replaces the
/// previous pass's references, as dropping a flow would). Median of `RUNS` passes.
fn measure_enrich(enricher: &mut Enricher<Discard>, templates: &[FlowRecord]) -> f64 {
    let mut records = templates.to_vec();
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for i in 0..FLOWS as usize {
                let n = records.len();
                enricher.enrich(black_box(&mut records[i % n]));
            }
            start.elapsed().as_nanos() as f64 / f64::from(FLOWS)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

const RUNS: usize = 5;

/// Conntrack that knows no connection: VIP traffic kube-proxy never translated.
struct EmptyConntrack;

impl ConntrackQuery for EmptyConntrack {
    fn get(&mut self, _tuple: &Tuple, _named: Named) -> Result<Option<Entry>, CtnetlinkError> {
        Ok(None)
    }
}

fn enricher_without_entries(index: &Arc<Index>) -> Enricher<Discard> {
    let mut enricher = Enricher::new(index.clone(), Discard).with_conntrack(Box::new(EmptyConntrack));
    // The first miss of each tuple is asked again at once; later ones are cached.
    let warm: Vec<FlowRecord> = (0..1024)
        .map(|i| {
            tcp_flow(
                pod_ip(i * 7 % PODS),
                30_000 + i,
                service_ip(i % SERVICES),
                u32::from(SERVICE_PORT),
            )
        })
        .collect();
    for _ in 0..2 {
        for template in &warm {
            enricher.enrich(&mut template.clone());
        }
    }
    enricher
}

/// The index's share: two endpoint and one service lookup, Arc clones.
fn measure_lookup(index: &Index, templates: &[FlowRecord]) -> f64 {
    let start = Instant::now();
    for i in 0..FLOWS as usize {
        if let Some((src, dst)) = templates[i % templates.len()].addresses {
            black_box(index.read(|l| {
                (
                    l.endpoint(&src).cloned(),
                    l.endpoint(&dst).cloned(),
                    l.service(&dst).cloned(),
                )
            }));
        }
    }
    start.elapsed().as_nanos() as f64 / f64::from(FLOWS)
}

fn main() {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let started = Instant::now();
    let index = build(PODS);
    let build_ms = started.elapsed().as_millis();
    // Agent events the changes queued (one or two per pod IP) are not index memory.
    let mut queued = index.agent_events().len();
    index.agent_events().drain_into(&mut Discard);
    let with_pods = LIVE_BYTES.load(Ordering::Relaxed);
    for i in 0..SERVICES {
        index.apply(Change::Upsert(Object::Service(ServiceInfo {
            namespace: format!("team-{}", i % 100),
            name: format!("svc-{i}"),
            uid: format!("svc-uid-{i}"),
            service_type: "ClusterIP".into(),
            ips: vec![service_ip(i)],
            ports: vec![ServicePort {
                port: SERVICE_PORT,
                protocol: "TCP".into(),
                node_port: Some(node_port(i)),
            }],
            external_traffic_policy: String::new(),
            internal_traffic_policy: String::new(),
        })));
    }
    queued += index.agent_events().len();
    index.agent_events().drain_into(&mut Discard);
    let with_services = LIVE_BYTES.load(Ordering::Relaxed);
    let pod_bytes = (with_pods - before) as f64;
    let per_1k_pods_mib = pod_bytes / f64::from(PODS / 1000) / (1024.0 * 1024.0);
    let service_bytes = (with_services - with_pods) as f64 / f64::from(SERVICES);

    let pod_to_pod: Vec<FlowRecord> = (0..1024)
        .map(|i| flow(pod_ip(i * 7 % PODS), pod_ip(i * 13 % PODS)))
        .collect();
    let pod_to_service: Vec<FlowRecord> = (0..1024)
        .map(|i| flow(pod_ip(i * 7 % PODS), service_ip(i % SERVICES)))
        .collect();
    let unknown: Vec<FlowRecord> = (0..1024)
        .map(|i| {
            flow(
                IpAddr::V4(Ipv4Addr::from(0xcb00_7100 + i)),
                IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
            )
        })
        .collect();

    let tcp_pod_to_pod: Vec<FlowRecord> = (0..1024)
        .map(|i| tcp_flow(pod_ip(i * 7 % PODS), 30_000 + i, pod_ip(i * 13 % PODS), 5432))
        .collect();
    let tcp_to_service: Vec<FlowRecord> = (0..1024)
        .map(|i| {
            let service = service_ip(i % SERVICES);
            tcp_flow(pod_ip(i * 7 % PODS), 30_000 + i, service, u32::from(SERVICE_PORT))
        })
        .collect();
    let tcp_at_backend: Vec<FlowRecord> = (0..1024)
        .map(|i| {
            let backend = backend_of(service_ip(i % SERVICES));
            tcp_flow(pod_ip(i * 7 % PODS), 30_000 + i, backend, u32::from(BACKEND_PORT))
        })
        .collect();

    // Other client ports than the rows above, so no tuple is cached twice.
    let tcp_to_node_port: Vec<FlowRecord> = (0..1024)
        .map(|i| {
            tcp_flow(
                pod_ip(i * 7 % PODS),
                40_000 + i,
                node_ip(i),
                u32::from(node_port(i % SERVICES)),
            )
        })
        .collect();
    let tcp_at_backend_by_node_port: Vec<FlowRecord> = (0..1024)
        .map(|i| {
            tcp_flow(
                pod_ip(i * 7 % PODS),
                40_000 + i,
                backend_of(node_ip(i)),
                u32::from(BACKEND_PORT),
            )
        })
        .collect();

    let mut enricher = Enricher::new(index.clone(), Discard);
    // Fills its translation cache from the Service rows before measuring.
    let mut translating = Enricher::new(index.clone(), Discard).with_conntrack(Box::new(KubeProxyConntrack));
    for template in tcp_to_service.iter().chain(&tcp_pod_to_pod).chain(&tcp_to_node_port) {
        translating.enrich(&mut template.clone());
    }
    let (base_ns, base_allocs) = measure(&mut Discard, &pod_to_pod);
    // The real last stage: namespace tracking and the observer ring.
    let (writer, _ring) = ring::ring(ring::DEFAULT_CAPACITY).expect("ring");
    let mut into_ring = Enricher::new(index.clone(), RingSink::new(writer, Arc::new(ObserverStats::default())));
    let rows = [
        ("pod -> pod", measure(&mut enricher, &pod_to_pod)),
        ("pod -> service VIP", measure(&mut enricher, &pod_to_service)),
        ("world -> world", measure(&mut enricher, &unknown)),
        ("pod -> pod, into the ring", measure(&mut into_ring, &pod_to_pod)),
        ("pod -> pod TCP", measure(&mut enricher, &tcp_pod_to_pod)),
        (
            "pod -> pod TCP, translations cached",
            measure(&mut translating, &tcp_pod_to_pod),
        ),
        (
            "pod -> VIP TCP, backend cached",
            measure(&mut translating, &tcp_to_service),
        ),
        (
            "pod -> VIP TCP, no conntrack entry",
            measure(&mut enricher_without_entries(&index), &tcp_to_service),
        ),
        (
            "at backend TCP, translation cached",
            measure(&mut translating, &tcp_at_backend),
        ),
        (
            "pod -> NodePort TCP, backend cached",
            measure(&mut translating, &tcp_to_node_port),
        ),
        (
            "at backend TCP via NodePort, cached",
            measure(&mut translating, &tcp_at_backend_by_node_port),
        ),
    ];

    println!("enrichment with {PODS} pods, {SERVICES} services indexed (median of {RUNS} passes of {FLOWS} flows)");
    println!(
        "{:<42} {:>10} {:>12} {:>10}",
        "case", "ns/flow", "allocs/flow", "vs base"
    );
    println!(
        "{:<42} {:>10.0} {:>12.1} {:>10}",
        "baseline: clone + forward, no enrich", base_ns, base_allocs, "1.00x"
    );
    for (name, (ns, allocs)) in rows {
        println!(
            "{:<42} {:>10.0} {:>12.1} {:>9.2}x   (+{:.0} ns, +{:.1} allocs)",
            format!("enrich {name}"),
            ns,
            allocs,
            ns / base_ns,
            ns - base_ns,
            allocs - base_allocs
        );
    }
    println!();
    println!("Enricher::enrich alone, median of {RUNS} passes (the stage's own cost per flow):");
    for (name, templates) in [
        ("pod -> pod", &pod_to_pod),
        ("pod -> service VIP", &pod_to_service),
        ("world -> world", &unknown),
    ] {
        println!("{:<42} {:>10.0} ns", name, measure_enrich(&mut enricher, templates));
    }
    // Rows whose records enrichment does not rewrite, so they can stay in place.
    let in_place = [
        ("pod -> pod TCP", measure_enrich(&mut enricher, &tcp_pod_to_pod)),
        (
            "pod -> pod TCP, translations cached",
            measure_enrich(&mut translating, &tcp_pod_to_pod),
        ),
        (
            "at backend TCP, translation cached",
            measure_enrich(&mut translating, &tcp_at_backend),
        ),
        (
            "at backend TCP via NodePort, cached",
            measure_enrich(&mut translating, &tcp_at_backend_by_node_port),
        ),
    ];
    for (name, ns) in in_place {
        println!("{:<42} {:>10.0} ns", name, ns);
    }
    println!(
        "{:<42} {:>10.0} ns (3 lookups + Arc clones; part of the rows above)",
        "index lookup only, pod -> pod",
        measure_lookup(&index, &pod_to_pod)
    );
    println!(
        "index memory: {per_1k_pods_mib:.2} MiB per 1k pods; {service_bytes:.0} B per service; build {build_ms} ms for {PODS} pods"
    );
    println!("(not counted: {queued} agent events queued by the inserts, drained before measuring)");
}
