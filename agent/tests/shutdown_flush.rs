//! On shutdown the export queue is written out (its last lines reach the file)
//! and `/metrics` stops.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::net::TcpListener;
use std::time::Duration;

use sightline_agent::app::{Agent, RunningAgent};
use sightline_agent::cli::Args;
use sightline_agent::event::EventSink;

fn args(extra: &[&str]) -> Args {
    let mut argv: Vec<OsString> = [
        "sightline-agent",
        "--listen-address",
        "127.0.0.1:0",
        "--socket-path",
        "",
        "--disable-server-tls",
        "--k8s-disabled",
        "--node-name",
        "node-1",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    argv.extend(extra.iter().map(OsString::from));
    Args::load_from(argv).unwrap()
}

fn uuid(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    value["flow"]["uuid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_queued_flows_reach_the_file_when_the_pipeline_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.log");
    let agent = Agent::start(&args(&["--export-file-path", path.to_str().unwrap()]))
        .await
        .unwrap();
    let mut sink = agent.sink;
    for id in 0..5_000u64 {
        let mut flow = sightline_agent::synthetic::flow(id, "node-1", sightline_proto::Timestamp::now());
        flow.uuid = format!("flow-{id}");
        sink.publish(sightline_agent::event::Event::flow(flow));
    }
    // What the end of the event source does: the pipeline, and the export tap in it, go.
    drop(sink);
    let export = agent.export.expect("export configured");
    tokio::task::spawn_blocking(move || export.join()).await.unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    let uuids: Vec<String> = written.lines().map(uuid).collect();
    assert_eq!(uuids.len(), 5_000);
    assert_eq!(uuids.last().map(String::as_str), Some("flow-4999"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_out_the_export_and_stops_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.log");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let running = RunningAgent::start(&args(&[
        "--synthetic-flows-per-second",
        "20000",
        "--export-file-path",
        path.to_str().unwrap(),
        "--metrics-server",
        &format!("127.0.0.1:{port}"),
    ]))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok(),
        "/metrics up"
    );
    running.shutdown().await.unwrap();

    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.ends_with('\n'), "the last line is complete");
    // The synthetic source numbers its flows from 0: every one it published is
    // in the file, in order, up to the last.
    let uuids: Vec<String> = written.lines().map(uuid).collect();
    assert!(uuids.len() > 1_000, "{} lines", uuids.len());
    for (index, uuid) in uuids.iter().enumerate() {
        assert_eq!(uuid, &format!("00000000-0000-4000-8000-{index:012x}"));
    }
    let after = std::fs::metadata(&path).unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        after,
        "nothing written after shutdown returned"
    );
    // The metrics server stops with the agent.
    let mut refused = false;
    for _ in 0..20 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "/metrics still answers after shutdown");
}
