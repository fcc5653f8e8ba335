//! `http`/`httpV2` with `exemplars=true`: the flow's trace id as the exemplar of
//! the count and of the histogram bucket its latency fell in, shown in the
//! OpenMetrics exposition only.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use prometheus_client::registry::Registry;
use sightline_proto::flow::{Flow, L7FlowType, TraceContext, TraceParent};

use super::testing::*;
use crate::flow_record::FlowRecord;
use crate::metrics::options::parse_list;
use crate::metrics::{FlowFamilies, FlowMetrics};
use sightline_common::metrics_server::{Format, encode};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn traced(mut flow: Flow, trace_id: &str) -> Flow {
    flow.trace_context = Some(Box::new(TraceContext {
        parent: Some(TraceParent {
            trace_id: trace_id.into(),
        }),
    }));
    flow
}

/// Both expositions of what `list` counted for `flows`.
fn expositions(list: &str, flows: &[Flow]) -> (String, String) {
    let mut metrics = FlowMetrics::new(&parse_list(&[list]).unwrap(), 100).unwrap();
    for flow in flows {
        metrics.process(&FlowRecord::new(flow.clone()));
    }
    let families = FlowFamilies::default();
    families.replace(metrics.collectors());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(families));
    (
        encode(&registry, Format::OpenMetrics),
        encode(&registry, Format::Prometheus),
    )
}

fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix} in\n{text}"))
}

/// The exemplar part of a sample line (after ` # `), if any.
fn exemplar(line: &str) -> Option<&str> {
    line.split_once(" # ").map(|(_, exemplar)| exemplar)
}

#[test]
fn http_v2_attaches_the_trace_id_to_the_count_and_the_latency_bucket() {
    let flows = [
        // 30 ms: the first bucket that holds it is le="0.05".
        traced(http_flow(L7FlowType::Response, "GET", 200, 30_000_000), TRACE_ID),
        // A response without a trace id counts without replacing the exemplar.
        http_flow(L7FlowType::Response, "GET", 200, 30_000_000),
    ];
    let (open_metrics, prometheus) = expositions(
        "httpV2:exemplars=true;sourceContext=namespace;destinationContext=namespace",
        &flows,
    );
    // The encoder writes `le` first; Prometheus does not care about label order.
    let bucket = line_starting(
        &open_metrics,
        r#"hubble_http_request_duration_seconds_bucket{le="0.05",source="db",destination="shop",method="GET",reporter="client"} 2"#,
    );
    let bucket_exemplar = exemplar(bucket).unwrap_or_else(|| panic!("no exemplar on {bucket}"));
    assert!(
        bucket_exemplar.starts_with(&format!(r#"{{traceID="{TRACE_ID}"}} 0.03 "#)),
        "{bucket}"
    );
    let exemplar_lines: Vec<&str> = open_metrics.lines().filter(|l| l.contains(" # {")).collect();
    assert_eq!(exemplar_lines.len(), 2, "one bucket and the counter:\n{open_metrics}");
    let count = line_starting(&open_metrics, "hubble_http_requests_total{");
    assert!(
        count.contains(r#"status="200",reporter="client"} 2 # {traceID=""#),
        "{count}"
    );
    assert!(
        count.contains(&format!(r#"{{traceID="{TRACE_ID}"}} 1"#)),
        "the exemplar value is the increment: {count}"
    );
    assert!(
        !prometheus.contains(TRACE_ID),
        "the Prometheus text format has no exemplars:\n{prometheus}"
    );
}

#[test]
fn http_v1_attaches_the_trace_id_to_requests_and_responses() {
    let flows = [
        traced(http_flow(L7FlowType::Request, "GET", 0, 0), TRACE_ID),
        traced(http_flow(L7FlowType::Response, "GET", 200, 2_000_000), TRACE_ID),
    ];
    let (open_metrics, _) = expositions("http:exemplars=true", &flows);
    for prefix in [
        "hubble_http_requests_total{",
        "hubble_http_responses_total{",
        r#"hubble_http_request_duration_seconds_bucket{le="0.005",method="GET",reporter="client"}"#,
    ] {
        let line = line_starting(&open_metrics, prefix);
        assert!(line.contains(&format!(r#"# {{traceID="{TRACE_ID}"}}"#)), "{line}");
    }
}

#[test]
fn without_exemplars_true_no_exemplar_is_written() {
    let flows = [traced(
        http_flow(L7FlowType::Response, "GET", 200, 30_000_000),
        TRACE_ID,
    )];
    for list in [
        "httpV2",
        "httpV2:exemplars=false",
        "httpV2:exemplars",
        "http:exemplars=TRUE",
    ] {
        let (open_metrics, _) = expositions(list, &flows);
        assert!(
            open_metrics.contains("hubble_http_request_duration_seconds_count{"),
            "{list}: counted\n{open_metrics}"
        );
        assert!(!open_metrics.contains(" # {"), "{list}: no exemplar\n{open_metrics}");
    }
}

fn promtool(text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scrape");
    std::fs::write(&file, text).unwrap();
    Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("promtool (scripts/setup installs the prometheus package)")
}

#[test]
fn promtool_accepts_the_prometheus_text_of_series_with_exemplars() {
    let flows = [traced(
        http_flow(L7FlowType::Response, "GET", 200, 30_000_000),
        TRACE_ID,
    )];
    let (_, prometheus) = expositions(
        "httpV2:exemplars=true;sourceContext=namespace;destinationContext=pod",
        &flows,
    );
    let check = promtool(&prometheus);
    assert!(
        check.status.success(),
        "promtool check metrics:\n{}{}\n{prometheus}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
