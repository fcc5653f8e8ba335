//! The agent binary with synthetic flows and `--metrics-server`: what a scraper
//! sees on `/metrics`, what promtool says about it, and what a real Prometheus
//! server answers about it (promtool and prometheus come from `scripts/setup`).
#![allow(clippy::unwrap_used)]

#[path = "prometheus_support/mod.rs"]
mod prometheus_support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prometheus_support::{Process, Prometheus, get, promtool_check, total, value, wait_for};

const FLOWS_PER_SECOND: &str = "2000";
const METRICS: &str = "flow:sourceContext=namespace drop:sourceContext=namespace;destinationContext=namespace tcp port-distribution icmp dns:query";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn agent(metrics_port: u16, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sightline-agent"));
    command
        .args([
            "--synthetic-flows-per-second",
            FLOWS_PER_SECOND,
            "--disable-server-tls",
            "--listen-address",
            "127.0.0.1:0",
            "--socket-path",
            "",
            "--k8s-disabled",
            "--node-name",
            "node-1",
            "--metrics-server",
        ])
        .arg(format!("127.0.0.1:{metrics_port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

#[test]
fn a_scrape_shows_the_configured_flow_metrics_with_consistent_values() {
    let port = free_port();
    let _agent = Process(agent(port, &["--metrics", METRICS]).spawn().unwrap());
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let text = wait_for("flows counted", Duration::from_secs(30), || {
        get(address, "/metrics").filter(|t| total(t, "hubble_flows_processed_total", &[]) >= 2000.0)
    });

    let flows = total(&text, "hubble_flows_processed_total", &[]);
    let dropped = total(&text, "hubble_flows_processed_total", &[r#"verdict="DROPPED""#]);
    // The synthetic source drops one flow in ten.
    assert!(
        (0.07..=0.13).contains(&(dropped / flows)),
        "{dropped} of {flows} dropped"
    );
    let drops = total(
        &text,
        "hubble_drop_total",
        &[r#"reason="DROP_REASON_UNKNOWN""#, r#"protocol="TCP""#],
    );
    assert!(drops > 0.0, "drops counted:\n{text}");
    assert!(
        text.contains(r#"hubble_flows_processed_total{protocol="TCP",type="Trace",subtype="to-endpoint",verdict="FORWARDED",source="#),
        "{text}"
    );
    assert!(text.contains(r#"hubble_drop_total{source=""#), "{text}");
    // Only requests (is_reply false: even flows) count, and those go to 80 or 8080.
    assert!(total(&text, "hubble_port_distribution_total", &[r#"port="80""#]) > 0.0);
    assert!(total(&text, "hubble_port_distribution_total", &[r#"port="8080""#]) > 0.0);
    assert_eq!(total(&text, "hubble_port_distribution_total", &[r#"port="443""#]), 0.0);
    assert!(
        total(
            &text,
            "hubble_tcp_flags_total",
            &[r#"flag="SYN-ACK""#, r#"family="IPv4""#]
        ) > 0.0
    );
    // No ICMP or DNS flows: their families are declared without series.
    assert_eq!(total(&text, "hubble_icmp_total", &[]), 0.0);
    assert!(text.contains("# TYPE hubble_dns_queries_total counter"), "{text}");
    for process in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(total(&text, process, &[]) > 0.0, "{process} in\n{text}");
    }
    assert!(total(&text, "sightline_observer_flows_seen_total", &[]) >= flows);
    assert_eq!(
        total(&text, "sightline_metrics_series_limited_total", &[]),
        0.0,
        "no family at its limit"
    );

    promtool_check(&text);
}

#[test]
fn a_prometheus_server_answers_hubbles_dashboard_queries_about_the_agent() {
    let port = free_port();
    let _agent = Process(agent(port, &["--metrics", METRICS]).spawn().unwrap());
    let prometheus_port = free_port();
    let prometheus = Prometheus::local(
        format!("127.0.0.1:{prometheus_port}").parse().unwrap(),
        format!("127.0.0.1:{port}").parse().unwrap(),
    );
    // rate() divides by the whole minute: it reads true once a minute of samples exists.
    let full_minute = Instant::now() + Duration::from_secs(62);
    let by_verdict = wait_for("rates by verdict", Duration::from_secs(150), || {
        prometheus
            .query("sum by (verdict) (rate(hubble_flows_processed_total[1m]))")
            .filter(|r| r.len() == 2 && Instant::now() > full_minute)
    });
    let rate = |verdict: &str| -> f64 {
        by_verdict
            .iter()
            .find(|s| s["metric"]["verdict"] == verdict)
            .map(value)
            .unwrap_or_else(|| panic!("no {verdict} series in {by_verdict:?}"))
    };
    let (forwarded, dropped) = (rate("FORWARDED"), rate("DROPPED"));
    // 2000 flows/s, one in ten dropped; wide bounds for a shared, noisy machine.
    assert!((900.0..=2600.0).contains(&forwarded), "forwarded {forwarded}/s");
    assert!((90.0..=260.0).contains(&dropped), "dropped {dropped}/s");

    let top = wait_for("top drop pairs", Duration::from_secs(30), || {
        prometheus.query("topk(5, sum by (source, destination) (rate(hubble_drop_total[1m])))")
    });
    assert!(!top.is_empty() && top.len() <= 5, "{top:?}");
    for series in &top {
        assert!(
            series["metric"]["source"].as_str().is_some_and(|s| !s.is_empty()),
            "{series}"
        );
        assert!(
            series["metric"]["destination"].as_str().is_some_and(|s| !s.is_empty()),
            "{series}"
        );
    }
}

#[test]
fn a_mistake_in_metrics_stops_the_agent_with_a_message_naming_it() {
    for (list, named) in [
        ("flow drop:sourceContext=pods", "\"pods\""),
        ("flow policy", "\"policy\""),
        ("dns:qeury", "\"qeury\""),
        ("flow:labelsContext=source_node", "\"source_node\""),
    ] {
        let output = agent(free_port(), &["--metrics", list]).output().unwrap();
        assert!(!output.status.success(), "{list} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{list}: {stderr}");
    }
}

#[test]
fn the_dynamic_file_is_applied_within_two_seconds_and_a_broken_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.yaml");
    std::fs::write(&file, "metrics:\n  - name: flow\n").unwrap();
    let port = free_port();
    let _agent = Process(
        agent(port, &["--dynamic-metrics-config-path", file.to_str().unwrap()])
            .spawn()
            .unwrap(),
    );
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for("flow metric", Duration::from_secs(30), || {
        get(address, "/metrics").filter(|t| total(t, "hubble_flows_processed_total", &[]) > 0.0)
    });

    std::fs::write(&file, "metrics:\n  - name: flow\n  - name: drop\n").unwrap();
    let changed = Instant::now();
    let text = wait_for("drop metric", Duration::from_secs(10), || {
        get(address, "/metrics").filter(|t| total(t, "hubble_drop_total", &[]) > 0.0)
    });
    assert!(
        changed.elapsed() < Duration::from_secs(2),
        "applied after {:?}",
        changed.elapsed()
    );
    let flows_before = total(&text, "hubble_flows_processed_total", &[]);
    assert!(flows_before > 0.0, "the unchanged flow series kept counting");

    std::fs::write(&file, "metrics:\n  - name: flow\n    contextOptions: [\n").unwrap();
    let text = wait_for("refusal counted", Duration::from_secs(10), || {
        get(address, "/metrics")
            .filter(|t| total(t, "sightline_metrics_config_reloads_total", &[r#"result="error""#]) == 1.0)
    });
    assert!(
        total(&text, "hubble_drop_total", &[]) > 0.0,
        "the last good configuration stays"
    );
    assert!(total(&text, "hubble_flows_processed_total", &[]) >= flows_before);
    assert_eq!(
        total(
            &text,
            "sightline_metrics_config_reloads_total",
            &[r#"result="success""#]
        ),
        1.0
    );
}
