//! Aggregation switched on and off through the dynamic file: each change restarts
//! the entry, and a stopping exporter writes the groups it counted, so the file
//! shows plain lines, then one line per group, then plain lines again. No clock
//! is involved: the interval (one hour) never ends during the test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use sightline_proto::Timestamp;

use super::DynamicExporters;
use crate::event::Event;
use crate::metrics::runtime::LostEvents;
use crate::observer::entry::Entry;
use crate::synthetic;

fn text(path: &Path, aggregation: &str) -> String {
    format!(
        "flowLogs:\n  - name: flows\n    filePath: {}\n    fieldMask: [uuid, verdict]\n{aggregation}",
        path.display()
    )
}

fn offer(exporters: &DynamicExporters, numbers: std::ops::Range<u64>) {
    let now = Timestamp {
        seconds: 1_800_000_000,
        nanos: 0,
    };
    for i in numbers {
        let record = synthetic::record(i, "node-1", now);
        exporters.offer(&Arc::new(Entry::new(Event::Flow(Box::new(record)))));
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn aggregation_is_added_and_removed_live_and_each_stop_writes_the_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.log");
    let exporters = DynamicExporters::new("node-1".into(), Some(LostEvents::default()));
    exporters.apply("flowlogs.yaml", &text(&path, "")).unwrap();
    offer(&exporters, 0..3);

    let aggregated = "    fieldAggregate: [verdict]\n    aggregationInterval: 1h\n";
    let plan = exporters.apply("flowlogs.yaml", &text(&path, aggregated)).unwrap();
    assert_eq!(plan.restart, ["flows"]);
    // Synthetic flow n is dropped when n % 10 == 9 and goes out (egress) when n is even.
    offer(&exporters, 10..30);

    let plan = exporters.apply("flowlogs.yaml", &text(&path, "")).unwrap();
    assert_eq!(plan.restart, ["flows"]);
    offer(&exporters, 40..42);
    exporters.stop_all();

    let lines = lines(&path);
    let uuids: Vec<&str> = lines.iter().filter_map(|l| l["flow"]["uuid"].as_str()).collect();
    assert_eq!(
        uuids,
        [
            "00000000-0000-4000-8000-000000000000",
            "00000000-0000-4000-8000-000000000001",
            "00000000-0000-4000-8000-000000000002",
            "00000000-0000-4000-8000-000000000028",
            "00000000-0000-4000-8000-000000000029",
        ],
        "plain lines before and after, none in between"
    );
    let groups = &lines[3..5];
    assert_eq!(
        groups[0],
        serde_json::json!({
            "flow": {
                "time": "2027-01-15T08:00:00Z",
                "verdict": "FORWARDED",
                "aggregate": {"ingress_flow_count": 8, "egress_flow_count": 10},
            },
            "time": "2027-01-15T08:00:00Z",
        }),
        "the field mask does not apply to aggregated flows; node_name is not an aggregate field"
    );
    assert_eq!(groups[1]["flow"]["verdict"], "DROPPED");
    assert_eq!(
        groups[1]["flow"]["aggregate"],
        serde_json::json!({"ingress_flow_count": 2})
    );
}

#[test]
fn a_removed_aggregating_entry_writes_its_groups() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.log");
    let exporters = DynamicExporters::new("node-1".into(), None);
    let aggregated = "    fieldAggregate: [destination_names, Type]\n    aggregationInterval: 30m\n";
    exporters.apply("flowlogs.yaml", &text(&path, aggregated)).unwrap();
    offer(&exporters, 0..100);
    let plan = exporters.apply("flowlogs.yaml", "flowLogs: []\n").unwrap();
    assert_eq!(plan.stop, ["flows"]);
    let lines = lines(&path);
    assert_eq!(lines.len(), 1, "one group: every synthetic flow is L3_L4 without names");
    assert_eq!(lines[0]["flow"]["Type"], "L3_L4");
    assert_eq!(
        lines[0]["flow"]["aggregate"],
        serde_json::json!({"ingress_flow_count": 50, "egress_flow_count": 50})
    );
}

/// Cilium's script tests spell aggregation `aggregationOptions: {windowInterval,
/// aggregationFields}` in their own harness type; a `flowLogs:` entry does not take it,
/// and rather than ignoring it (and silently not aggregating) the text is refused.
#[test]
fn the_test_harness_spelling_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.log");
    let harness =
        "    aggregationOptions:\n      windowInterval: 100ms\n      aggregationFields: [source, destination]\n";
    let exporters = DynamicExporters::new("node-1".into(), None);
    let error = exporters
        .apply("flowlogs.yaml", &text(&path, harness))
        .unwrap_err()
        .to_string();
    assert!(error.contains("aggregationOptions"), "{error}");
    assert!(exporters.running().is_empty());
    let spelled = "    fieldAggregate: [source, destination]\n    aggregationInterval: 100ms\n";
    exporters.apply("flowlogs.yaml", &text(&path, spelled)).unwrap();
    assert_eq!(exporters.running(), ["flows"]);
    exporters.stop_all();
}
