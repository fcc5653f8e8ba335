//! L7 parse cost: one HTTP/1.1 request+response pair with ~512-byte heads through the
//! tracker (stream dedupe, parse, pairing; method, URL, redaction and Summary are built
//! when a record is read, in the decoder rows), the same two heads through `httparse`
//! alone as the baseline, and one unary gRPC call over HTTP/2 (HEADERS + DATA each way
//! plus the trailers) with HPACK.
//!
//! `cargo bench -p sightline-agent --bench l7`
//!
//! Each protocol has three rows: the tracker alone (segment → `L7Message`), the decoder
//! (ring record → the `FlowRecord` the ring stores: `l7` and Summary built, header list
//! still deferred), and the decoder plus materialising the complete `flow.Flow` a reader
//! gets (header list, UUID, addresses as text): the cost deferred to readers, shown rather
//! than hidden.
//!
//! Before the timings it prints the heap allocations each of them costs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use loona_hpack::Encoder;
use sightline_agent::datapath::decode::Decoder;
use sightline_agent::datapath::drop_reason::DropReasonNames;
use sightline_agent::event::Event;
use sightline_agent::flow_record::FlowRecord;
use sightline_agent::l7::{L7Message, L7Protocol, L7Settings, L7Tracker, Segment};
use sightline_bpf_common::{FlowEvent, IPPROTO_TCP, L7_MAX_CAPTURE, L7Event, kind, l7_protocol};

/// Counts allocations only while `COUNTING` is set, so the timed runs pay one relaxed
/// load per allocation and nothing else.
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// side effect that never touches the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; `ptr` came from this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations (and reallocations) per call of `work`, averaged over 100 calls.
fn allocations_per_call(mut work: impl FnMut()) -> f64 {
    work();
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    for _ in 0..100 {
        work();
    }
    COUNTING.store(false, Ordering::Relaxed);
    ALLOCATIONS.load(Ordering::Relaxed) as f64 / 100.0
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A request and a response head of about 512 bytes each, like a browser or SDK sends.
fn http1_pair() -> (Vec<u8>, Vec<u8>) {
    let mut request = b"GET /api/v1/orders/12345?expand=items HTTP/1.1\r\nHost: orders.shop.svc.cluster.local\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36\r\n\
Accept: application/json\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n\
X-Request-Id: 4bf92f3577b34da6a3ce929d0e0e4736\r\n\
Traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
        .to_vec();
    while request.len() < 490 {
        request.extend_from_slice(b"X-Pad: abcdefghij\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let mut response = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\
Date: Sun, 06 Dec 2026 19:00:00 GMT\r\nServer: envoy\r\nCache-Control: no-store\r\n\
X-Request-Id: 4bf92f3577b34da6a3ce929d0e0e4736\r\nVary: Accept-Encoding\r\n"
        .to_vec();
    while response.len() < 490 {
        response.extend_from_slice(b"X-Pad: abcdefghij\r\n");
    }
    response.extend_from_slice(b"\r\n{}");
    (request, response)
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn block(encoder: &mut Encoder<'_>, fields: &[(&str, &str)]) -> Vec<u8> {
    encoder.encode(fields.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
}

/// One unary gRPC call's bytes per direction, encoded after an identical call so HPACK
/// refers to its dynamic table as it does on a long-lived channel.
fn grpc_call() -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut client = Encoder::new();
    let mut server = Encoder::new();
    let mut call = || {
        let request = [
            frame(
                1,
                0x4,
                1,
                &block(
                    &mut client,
                    &[
                        (":method", "POST"),
                        (":scheme", "http"),
                        (":path", "/shop.Orders/Get"),
                        (":authority", "orders.shop.svc:50051"),
                        ("content-type", "application/grpc"),
                        ("te", "trailers"),
                        ("grpc-timeout", "1S"),
                        ("user-agent", "grpc-rust/0.14"),
                    ],
                ),
            ),
            frame(0, 0x1, 1, &[0, 0, 0, 0, 4, 8, 1, 16, 2]),
        ]
        .concat();
        let response = [
            frame(
                1,
                0x4,
                1,
                &block(&mut server, &[(":status", "200"), ("content-type", "application/grpc")]),
            ),
            frame(0, 0, 1, &[0, 0, 0, 0, 4, 8, 1, 16, 2]),
            frame(
                1,
                0x5,
                1,
                &block(&mut server, &[("grpc-status", "0"), ("grpc-message", "")]),
            ),
        ]
        .concat();
        (request, response)
    };
    let (first_request, first_response) = call();
    let (request, response) = call();
    (first_request, first_response, request, response)
}

/// A tracker with one connection, fed whole segments in alternating directions.
struct Connection {
    tracker: L7Tracker,
    client: SocketAddr,
    server: SocketAddr,
    seq: [u32; 2],
    now: u64,
    out: Vec<L7Message>,
}

impl Connection {
    fn new() -> Self {
        Self {
            tracker: L7Tracker::new(L7Settings::default()),
            client: "10.0.0.1:43210".parse().expect("literal address"),
            server: "10.0.0.2:8080".parse().expect("literal address"),
            seq: [1, 1],
            now: 1_700_000_000_000_000_000,
            out: Vec::with_capacity(8),
        }
    }

    fn send(&mut self, protocol: L7Protocol, from_client: bool, bytes: &[u8]) {
        let index = usize::from(!from_client);
        let (src, dst) = if from_client {
            (self.client, self.server)
        } else {
            (self.server, self.client)
        };
        let segment = Segment {
            src,
            dst,
            protocol,
            tcp_seq: self.seq[index],
            payload_len: bytes.len() as u32,
            captured: bytes,
            timestamp_ns: self.now,
            fin_or_rst: false,
            from_client,
        };
        self.seq[index] = self.seq[index].wrapping_add(bytes.len() as u32);
        self.now += 1_000;
        self.tracker.on_segment(&segment, &mut self.out);
    }
}

/// The same connection as ring records through the datapath decoder, which the ring
/// would store as `FlowRecord`s.
struct Ring {
    decoder: Decoder,
    seq: [u32; 2],
    now: u64,
    /// Boxed as the decoder hands them to the ring: unboxing would add a copy per flow.
    #[allow(clippy::vec_box)]
    flows: Vec<Box<FlowRecord>>,
}

impl Ring {
    fn new() -> Self {
        Self {
            decoder: Decoder::new("node-1".to_owned(), DropReasonNames::new(HashMap::new())),
            seq: [1, 1],
            now: 1_000,
            flows: Vec::with_capacity(8),
        }
    }

    /// The ring record of one captured segment (built once, outside the timed loop).
    fn record(&mut self, protocol: u8, from_client: bool, bytes: &[u8]) -> Vec<u8> {
        let index = usize::from(!from_client);
        let mut flow = FlowEvent {
            kind: kind::L7,
            timestamp_ns: self.now,
            ..FlowEvent::default()
        };
        let (client, server) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let (src, dst, sport, dport) = if from_client {
            (client, server, 43210, 8080)
        } else {
            (server, client, 8080, 43210)
        };
        flow.key.src_addr[..4].copy_from_slice(&src);
        flow.key.dst_addr[..4].copy_from_slice(&dst);
        flow.key.src_port = sport;
        flow.key.dst_port = dport;
        flow.key.protocol = IPPROTO_TCP;
        flow.key.ip_version = 4;
        let captured = bytes.len().min(L7_MAX_CAPTURE);
        let mut event = L7Event {
            flow,
            tcp_seq: self.seq[index],
            payload_len: bytes.len() as u32,
            captured_len: captured as u16,
            protocol,
            from_client: u8::from(from_client),
            _pad: 0,
            payload: [0; L7_MAX_CAPTURE],
        };
        event.payload[..captured].copy_from_slice(&bytes[..captured]);
        self.seq[index] = self.seq[index].wrapping_add(bytes.len() as u32);
        self.now += 1_000;
        sightline_bpf_common::record_bytes(&event).to_vec()
    }

    /// Sequence numbers of the records are fixed, so the same records are replayed by
    /// rewinding the connection: a new connection per iteration would measure setup.
    fn feed(&mut self, record: &[u8]) {
        let flows = &mut self.flows;
        let _ = self.decoder.decode_each(record, &mut |event| {
            if let Event::Flow(flow) = event {
                flows.push(flow);
            }
        });
    }
}

/// Records of `exchanges` consecutive exchanges (request, response), so the timed loop
/// walks through fresh sequence numbers.
fn ring_records(
    ring: &mut Ring,
    protocol: u8,
    setup: &[(bool, &[u8])],
    exchange: &[(bool, &[u8])],
    exchanges: usize,
) -> Vec<Vec<u8>> {
    for (from_client, bytes) in setup {
        let record = ring.record(protocol, *from_client, bytes);
        ring.feed(&record);
    }
    ring.flows.clear();
    (0..exchanges)
        .flat_map(|_| exchange.to_vec())
        .map(|(from_client, bytes)| ring.record(protocol, from_client, bytes))
        .collect()
}

/// Times `exchange` (one pair or call of records) over a long run of distinct records;
/// `materialise` also turns each stored record into the `flow.Flow` a reader gets.
fn bench_ring(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    protocol: u8,
    setup: &[(bool, &[u8])],
    exchange: &[(bool, &[u8])],
    materialise: bool,
) {
    const EXCHANGES: usize = 20_000;
    let mut ring = Ring::new();
    let records = ring_records(&mut ring, protocol, setup, exchange, EXCHANGES + 200);
    let per_exchange = exchange.len();
    let mut at = 0;
    let mut step = |ring: &mut Ring| {
        for record in &records[at..at + per_exchange] {
            ring.feed(black_box(record));
        }
        at += per_exchange;
        assert_eq!(ring.flows.len(), 2);
        for flow in ring.flows.drain(..) {
            if materialise {
                black_box(flow.into_flow());
            } else {
                black_box(flow);
            }
        }
    };
    let allocations = allocations_per_call(|| step(&mut ring));
    println!("{name}: {allocations} heap allocations per exchange");
    c.bench_function(name, |b| {
        b.iter_custom(|iterations| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iterations;
            while left > 0 {
                // A fresh connection once the prepared records run out.
                let mut ring = Ring::new();
                let records_again = ring_records(&mut ring, protocol, setup, exchange, EXCHANGES);
                let batch = left.min(EXCHANGES as u64);
                let start = std::time::Instant::now();
                for i in 0..batch as usize {
                    for record in &records_again[i * per_exchange..(i + 1) * per_exchange] {
                        ring.feed(black_box(record));
                    }
                    for flow in ring.flows.drain(..) {
                        if materialise {
                            black_box(flow.into_flow());
                        } else {
                            black_box(flow);
                        }
                    }
                }
                total += start.elapsed();
                left -= batch;
            }
            total
        })
    });
}

fn benches(c: &mut Criterion) {
    let (request, response) = http1_pair();
    let mut group = c.benchmark_group("l7");

    group.bench_function("baseline: httparse request+response heads", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Request::new(&mut headers);
            let request_len = parsed.parse(black_box(&request)).ok();
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            let response_len = parsed.parse(black_box(&response)).ok();
            black_box((request_len, response_len))
        })
    });

    let mut http1 = Connection::new();
    let http1_allocations = allocations_per_call(|| {
        http1.send(L7Protocol::Http1, true, &request);
        http1.send(L7Protocol::Http1, false, &response);
        http1.out.clear();
    });
    let headers = |head: &[u8]| head.windows(2).filter(|w| w == b"\r\n").count() - 2;
    println!(
        "http1 pair: {} + {} header fields, {http1_allocations} heap allocations per pair",
        headers(&request),
        headers(&response)
    );
    group.bench_function("http1 request+response pair (512 B heads)", |b| {
        b.iter(|| {
            http1.send(L7Protocol::Http1, true, black_box(&request));
            http1.send(L7Protocol::Http1, false, black_box(&response));
            assert_eq!(http1.out.len(), 2);
            http1.out.clear();
        })
    });
    let pair: [(bool, &[u8]); 2] = [(true, &request), (false, &response)];
    for materialise in [false, true] {
        let name = if materialise {
            "http1 pair: decoder + materialised flow.Flow"
        } else {
            "http1 pair: decoder to stored FlowRecord"
        };
        bench_ring(&mut group, name, l7_protocol::HTTP1, &[], &pair, materialise);
    }

    let (first_request, first_response, request, response) = grpc_call();
    let mut grpc = Connection::new();
    grpc.send(
        L7Protocol::Http2,
        true,
        &[PREFACE, &[0, 0, 0, 4, 0, 0, 0, 0, 0]].concat(),
    );
    grpc.send(L7Protocol::Http2, false, &[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    grpc.send(L7Protocol::Http2, true, &first_request);
    grpc.send(L7Protocol::Http2, false, &first_response);
    grpc.out.clear();
    let grpc_allocations = allocations_per_call(|| {
        grpc.send(L7Protocol::Http2, true, &request);
        grpc.send(L7Protocol::Http2, false, &response);
        grpc.out.clear();
    });
    println!("grpc unary call: {grpc_allocations} heap allocations per call");
    group.bench_function("grpc unary call (HTTP/2 + HPACK)", |b| {
        b.iter(|| {
            grpc.send(L7Protocol::Http2, true, black_box(&request));
            grpc.send(L7Protocol::Http2, false, black_box(&response));
            assert_eq!(grpc.out.len(), 2);
            grpc.out.clear();
        })
    });
    let client_preface = [PREFACE, &[0, 0, 0, 4, 0, 0, 0, 0, 0]].concat();
    let setup: [(bool, &[u8]); 4] = [
        (true, &client_preface),
        (false, &[0, 0, 0, 4, 0, 0, 0, 0, 0]),
        (true, &first_request),
        (false, &first_response),
    ];
    let call: [(bool, &[u8]); 2] = [(true, &request), (false, &response)];
    for materialise in [false, true] {
        let name = if materialise {
            "grpc call: decoder + materialised flow.Flow"
        } else {
            "grpc call: decoder to stored FlowRecord"
        };
        bench_ring(&mut group, name, l7_protocol::HTTP2, &setup, &call, materialise);
    }
    group.finish();
}

criterion_group!(l7, benches);
criterion_main!(l7);
