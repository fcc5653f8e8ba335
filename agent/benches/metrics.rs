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

/// The same records with one in eight turned into a DNS exchange (a query or its
/// response), so the `dns` handler counts too.
fn records_with_dns(count: u64) -> Vec<FlowRecord> {
    use sightline_proto::flow::{Dns, L7FlowType, Layer7, layer7};
    let mut records = records(count);
    for (i, record) in records.iter_mut().enumerate().filter(|(i, _)| i % 8 == 0) {
        let reply = i % 16 == 8;
        record.flow.l7 = Some(Box::new(Layer7 {
            r#type: if reply {
                L7FlowType::Response
            } else {
                L7FlowType::Request
            } as i32,
            record: Some(layer7::Record::Dns(Dns {
                query: format!("svc-{}.shop.svc.cluster.local.", i % 5),
                ips: if reply { vec!["10.96.0.10".into()] } else { vec![] },
                qtypes: vec!["A".into()],
                rrtypes: if reply { vec!["A".into()] } else { vec![] },
                ..Dns::default()
            })),
            ..Layer7::default()
        }));
        record.flow.is_reply = Some(sightline_proto::wkt::BoolValue { value: reply });
    }
    records
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
    let mixed = records_with_dns(RECORDS);
    for record in &mixed {
        metrics.process(record);
    }
    group.bench_function("same_with_one_flow_in_8_dns", |b| {
        b.iter(|| {
            for record in &mixed {
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

/// Flow-log export of enriched flows: the direct writer against the generated
/// serde path (the baseline, what export used before), each encoding a batch and
/// writing it with one `write` to a rotating file; the direct writer into
/// `/dev/null` (encoding alone, plus a syscall); and the whole exporter (queue,
/// writer thread, rotating file) from the pipeline's side until the thread has
/// written everything.
fn export(c: &mut Criterion) {
    use std::io::Write;
    use std::sync::Arc;

    use sightline_agent::event::Event;
    use sightline_agent::export::Exporter;
    use sightline_agent::export::encode::{LineEncoder, write_line_generic};
    use sightline_agent::export::exporter::ExportTarget;
    use sightline_agent::export::rotate::{RotatingFile, Rotation};
    use sightline_agent::observer::entry::Entry;
    use sightline_agent::observer::filter::FilterSet;

    let events: Vec<Event> = records(RECORDS).into_iter().map(|r| Event::Flow(Box::new(r))).collect();
    let dir = tempfile::tempdir().unwrap();
    let rotation = Rotation {
        max_bytes: 10 * 1024 * 1024,
        max_backups: 2,
        compress: false,
    };
    let mut file = RotatingFile::open(dir.path().join("events.log"), rotation.clone()).unwrap();
    let mut null = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
    let mut encoder = LineEncoder::new("node-1".into(), None);
    let mut batch = Vec::with_capacity(1 << 20);
    let mut group = c.benchmark_group("export");
    group.sample_size(30);
    group.throughput(Throughput::Elements(RECORDS));
    group.bench_function("baseline_generic_serde_to_rotating_file", |b| {
        b.iter(|| {
            for event in &events {
                write_line_generic(event, "node-1", None, &mut batch);
            }
            file.write_lines(&batch).unwrap();
            batch.clear();
        })
    });
    group.bench_function("direct_writer_to_rotating_file", |b| {
        b.iter(|| {
            for event in &events {
                encoder.write(event, &mut batch);
            }
            file.write_lines(&batch).unwrap();
            batch.clear();
        })
    });
    let mask = sightline_agent::observer::fieldmask::FlowMask::compile(
        &[
            "time",
            "uuid",
            "verdict",
            "node_name",
            "source.pod_name",
            "destination.pod_name",
            "l4",
        ]
        .map(str::to_owned),
    )
    .unwrap();
    let mut masked_encoder = LineEncoder::new("node-1".into(), Some(mask.clone()));
    group.bench_function("baseline_generic_serde_field_mask_to_rotating_file", |b| {
        b.iter(|| {
            for event in &events {
                write_line_generic(event, "node-1", Some(&mask), &mut batch);
            }
            file.write_lines(&batch).unwrap();
            batch.clear();
        })
    });
    group.bench_function("direct_writer_field_mask_to_rotating_file", |b| {
        b.iter(|| {
            for event in &events {
                masked_encoder.write(event, &mut batch);
            }
            file.write_lines(&batch).unwrap();
            batch.clear();
        })
    });
    group.bench_function("direct_writer_to_dev_null", |b| {
        b.iter(|| {
            for event in &events {
                encoder.write(event, &mut batch);
            }
            null.write_all(&batch).unwrap();
            batch.clear();
        })
    });
    const THROUGH_THREAD: u64 = 16_384;
    let entries: Vec<Arc<Entry>> = records(THROUGH_THREAD)
        .into_iter()
        .map(|r| Arc::new(Entry::new(Event::Flow(Box::new(r)))))
        .collect();
    group.throughput(Throughput::Elements(THROUGH_THREAD));
    group.bench_function("exporter_queue_thread_rotating_file", |b| {
        b.iter_custom(|iterations| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iterations {
                let target = ExportTarget {
                    path: Some(dir.path().join("threaded.log")),
                    rotation: rotation.clone(),
                    filters: FilterSet::default(),
                    mask: None,
                    aggregation: None,
                };
                let started = std::time::Instant::now();
                let mut tap = Exporter::start_target(target, "node-1".into(), None, THROUGH_THREAD as usize).unwrap();
                for entry in &entries {
                    tap.offer(entry);
                }
                tap.stop();
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, per_flow, scrape, export);
criterion_main!(benches);
