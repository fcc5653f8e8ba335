//! L7 parse cost: one HTTP/1.1 request+response pair with ~512-byte heads through the
//! tracker (stream dedupe, parse, pairing, redaction, Summary), the same two heads through
//! `httparse` alone as the baseline, and one unary gRPC call over HTTP/2 (HEADERS + DATA
//! each way plus the trailers) with HPACK.
//!
//! `cargo bench -p sightline-agent --bench l7`
//!
//! Before the timings it prints the heap allocations one pair and one call cost: with
//! Hubble's default of keeping every header, each header is two owned strings in the
//! proto record, which bounds how cheap the whole path can get.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use loona_hpack::Encoder;
use sightline_agent::l7::{L7Message, L7Protocol, L7Settings, L7Tracker, Segment};

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
    group.finish();
}

criterion_group!(l7, benches);
criterion_main!(l7);
