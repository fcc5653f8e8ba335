//! `hubble_dynamic_exporter_*` as a scrape shows them while `--flowlogs-config-path`
//! changes under the follower: entries added, updated, removed, one past its `end`,
//! and a broken text that keeps the last good configuration.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use sightline_common::metrics_server::{Format, encode};

use super::DynamicExporters;
use crate::export::dynamic_metrics::{DynamicExporterMetrics, config_hash};

fn entry(name: &str, dir: &Path, extra: &str) -> String {
    format!(
        "  - name: {name}\n    filePath: {}\n{extra}",
        dir.join(format!("{name}.log")).display()
    )
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Waits (at most 5 s) for the follower to apply the file: the hash moves to `text`'s.
fn scrape_after_write(registry: &Registry, path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    let hash = config_hash(text) as f64;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let scraped = encode(registry, Format::Prometheus);
        if sample(&scraped, "hubble_dynamic_exporter_config_hash") == Some(hash) || Instant::now() > deadline {
            return scraped;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_scrape_follows_the_file_through_add_update_remove_end_and_a_broken_text() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowlogs.yaml");
    let metrics = DynamicExporterMetrics::default();
    let mut registry = Registry::default();
    registry.register_collector(Box::new(metrics.clone()));
    assert!(
        !encode(&registry, Format::Prometheus).contains("hubble_dynamic_exporter"),
        "nothing before a dynamic configuration is seen"
    );

    let first = format!(
        "flowLogs:\n{}{}",
        entry("a", dir.path(), ""),
        entry("b", dir.path(), "")
    );
    std::fs::write(&config, &first).unwrap();
    let before = sightline_proto::Timestamp::now().seconds as f64;
    let exporters = DynamicExporters::new("node-1".into(), None).with_metrics(metrics);
    let _follower = exporters.follow_file(config.clone()).unwrap();
    let text = encode(&registry, Format::Prometheus);
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_exporters_total{status="active"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_exporters_total{status="inactive"}"#),
        Some(0.0)
    );
    assert_eq!(sample(&text, r#"hubble_dynamic_exporter_up{name="a"}"#), Some(1.0));
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_reconfigurations_total{op="add"}"#),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_reconfigurations_total{op="update"}"#),
        None
    );
    assert_eq!(
        sample(&text, "hubble_dynamic_exporter_config_hash"),
        Some(config_hash(&first) as f64)
    );
    let applied = sample(&text, "hubble_dynamic_exporter_config_last_applied").unwrap();
    assert!(
        applied >= before && applied < before + 60.0,
        "{applied} is not about now ({before})"
    );
    assert!(text.contains("# TYPE hubble_dynamic_exporter_up gauge"));
    assert!(text.contains("# TYPE hubble_dynamic_exporter_reconfigurations_total counter"));

    // `a` changes, `b` goes, `c` comes with an end in the past.
    let second = format!(
        "flowLogs:\n{}{}",
        entry("a", dir.path(), "    fieldMask: [verdict]\n"),
        entry("c", dir.path(), "    end: \"2020-01-01T00:00:00Z\"\n")
    );
    let text = scrape_after_write(&registry, &config, &second);
    assert_eq!(
        sample(&text, "hubble_dynamic_exporter_config_hash"),
        Some(config_hash(&second) as f64)
    );
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_reconfigurations_total{op="add"}"#),
        Some(3.0)
    );
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_reconfigurations_total{op="update"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_reconfigurations_total{op="remove"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_exporters_total{status="active"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_exporters_total{status="inactive"}"#),
        Some(1.0)
    );
    assert_eq!(sample(&text, r#"hubble_dynamic_exporter_up{name="a"}"#), Some(1.0));
    assert_eq!(sample(&text, r#"hubble_dynamic_exporter_up{name="c"}"#), Some(0.0));
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_up{name="b"}"#),
        None,
        "a removed exporter has no series"
    );

    // A broken text: counted as a failure, the last good configuration and its hash stay.
    std::fs::write(&config, "flowLogs:\n  - name: a\n    filePath: [\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = encode(&registry, Format::Prometheus);
        if sample(&text, r#"hubble_dynamic_exporter_reconfigurations_total{op="failure"}"#).is_some()
            || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_reconfigurations_total{op="failure"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "hubble_dynamic_exporter_config_hash"),
        Some(config_hash(&second) as f64)
    );
    assert_eq!(sample(&text, r#"hubble_dynamic_exporter_up{name="a"}"#), Some(1.0));
    assert_eq!(exporters.running(), ["a"]);
    // The refused text is not counted again on the next reads.
    std::thread::sleep(super::POLL_INTERVAL * 2);
    let text = encode(&registry, Format::Prometheus);
    assert_eq!(
        sample(&text, r#"hubble_dynamic_exporter_reconfigurations_total{op="failure"}"#),
        Some(1.0)
    );
}
