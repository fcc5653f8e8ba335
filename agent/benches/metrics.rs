//! Flow metrics benchmarks: the per-flow cost of Hubble's usual handler set with
//! pod contexts (against a baseline loop over the same records, measured in the
//! same run), and the encoding of a 10 000-series scrape.
//! `cargo bench -p sightline-agent --bench metrics`.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prometheus_client::registry::Registry;
use sightline_agent::flow_record::FlowRecord;
use sightline_agent::metrics::options::parse_list;
use sightline_agent::metrics::{FlowFamilies, FlowMetrics};
use sightline_agent::synthetic;
use sightline_common::metrics_server::{Format, encode};
use sightline_proto::Timestamp;

const HANDLERS: &str = "flow:sourceContext=pod;destinationContext=pod \
    drop:sourceContext=pod;destinationContext=pod \
    tcp:sourceContext=pod;destinationContext=pod \
    port-distribution:sourceContext=pod;destinationContext=pod \
    dns:sourceContext=pod;destinationContext=pod";
const RECORDS: u64 = 1024;

fn records(count: u64) -> Vec<FlowRecord> {
    let now = Timestamp::now();
    (0..count).map(|i| synthetic::record(i, "node-1", now)).collect()
}

fn per_flow(c: &mut Criterion) {
    let records = records(RECORDS);
    let mut metrics = FlowMetrics::new(&parse_list(&[HANDLERS]).unwrap(), 10_000).unwrap();
    // Every series exists before measuring: the steady state of a running agent.
    for record in &records {
        metrics.process(record);
    }
    let mut group = c.benchmark_group("metrics_per_flow");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("baseline_walk_records", |b| {
        b.iter(|| {
            for record in &records {
                black_box(record);
            }
        })
    });
    group.bench_function("flow_drop_tcp_port_distribution_dns_pod_contexts", |b| {
        b.iter(|| {
            for record in &records {
                metrics.process(black_box(record));
            }
        })
    });
    group.finish();
}

fn scrape(c: &mut Criterion) {
    // One series per source address: 10 000 series in one family.
    let mut metrics = FlowMetrics::new(&parse_list(&["flow:sourceContext=ip"]).unwrap(), 10_000).unwrap();
    for record in records(10_000) {
        metrics.process(&record);
    }
    let families = FlowFamilies::default();
    families.replace(metrics.collectors());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families));
    let text = encode(&registry, Format::Prometheus);
    let series = text
        .lines()
        .filter(|l| l.starts_with("hubble_flows_processed_total{"))
        .count();
    assert_eq!(series, 10_000);
    let mut group = c.benchmark_group("metrics_scrape");
    group.sample_size(20);
    group.bench_function("prometheus_text_10000_series", |b| {
        b.iter(|| black_box(encode(&registry, Format::Prometheus)))
    });
    group.bench_function("openmetrics_10000_series", |b| {
        b.iter(|| black_box(encode(&registry, Format::OpenMetrics)))
    });
    group.finish();
}

fn export(c: &mut Criterion) {
    use sightline_agent::event::Event;
    use sightline_agent::export::encode::write_line;
    use sightline_agent::export::rotate::{RotatingFile, Rotation};
    let events: Vec<Event> = records(RECORDS).into_iter().map(|r| Event::Flow(Box::new(r))).collect();
    let dir = tempfile::tempdir().unwrap();
    let rotation = Rotation {
        max_bytes: 10 * 1024 * 1024,
        max_backups: 2,
        compress: false,
    };
    let mut file = RotatingFile::open(dir.path().join("events.log"), rotation).unwrap();
    let mut batch = Vec::with_capacity(1 << 20);
    let mut group = c.benchmark_group("export");
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("encode_and_write_to_rotating_file", |b| {
        b.iter(|| {
            for event in &events {
                write_line(event, "node-1", None, &mut batch);
            }
            file.write_lines(&batch).unwrap();
            batch.clear();
        })
    });
    group.finish();
}

criterion_group!(benches, per_flow, scrape, export);
criterion_main!(benches);
