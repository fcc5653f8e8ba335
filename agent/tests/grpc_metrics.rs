//! The agent's API calls counted under go-grpc-prometheus' names and labels on
//! its `/metrics`, as Hubble's dashboards query them, and what a GetFlows reader
//! missed to the writer under Hubble's `hubble_lost_events_total`.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::time::Duration;

use sightline_proto::flow::LostEventSource;
use sightline_proto::observer::get_flows_response::ResponseTypes;
use sightline_proto::observer::{GetFlowsRequest, ServerStatusRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(port: u16) -> String {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    socket.read_to_string(&mut body).await.unwrap();
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_calls_are_counted_with_go_grpc_prometheus_names_and_labels() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut agent = support::start(&["--metrics-server", &format!("127.0.0.1:{port}")]).await;
    for id in 0..3 {
        agent.publish_flow(support::flow(id, 1));
    }
    let mut client = agent.observer().await;
    client.server_status(ServerStatusRequest {}).await.unwrap();
    let flows = support::collect(
        &mut client,
        GetFlowsRequest {
            number: 3,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(support::uuids(&flows).len(), 3);

    let get_flows = r#"grpc_method="GetFlows",grpc_service="observer.Observer",grpc_type="server_stream""#;
    let status = r#"grpc_method="ServerStatus",grpc_service="observer.Observer",grpc_type="unary""#;
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(port).await;
        if text.contains(&format!("grpc_server_handled_total{{grpc_code=\"OK\",{get_flows}}} 1")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for expected in [
        format!("grpc_server_started_total{{{get_flows}}} 1"),
        format!("grpc_server_handled_total{{grpc_code=\"OK\",{get_flows}}} 1"),
        format!("grpc_server_msg_received_total{{{get_flows}}} 1"),
        format!("grpc_server_msg_sent_total{{{get_flows}}} {}", flows.len()),
        format!("grpc_server_started_total{{{status}}} 1"),
        format!("grpc_server_handled_total{{grpc_code=\"OK\",{status}}} 1"),
        format!("grpc_server_msg_sent_total{{{status}}} 1"),
        // Registered but not called: present at 0, as go-grpc-prometheus initialises them.
        r#"grpc_server_started_total{grpc_method="Notify",grpc_service="peer.Peer",grpc_type="server_stream"} 0"#
            .to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected} missing from:\n{text}");
    }
}

/// Current-thread runtime: the server cannot read while the test writes, so a
/// follower of a 7-event ring misses 93 of 100 flows, deterministically.
#[tokio::test(flavor = "current_thread")]
async fn events_a_follower_missed_to_the_writer_count_as_hubble_ring_buffer_losses() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut agent = support::start(&[
        "--event-buffer-capacity",
        "7",
        "--metrics-server",
        &format!("127.0.0.1:{port}"),
    ])
    .await;
    let series = r#"hubble_lost_events_total{source="hubble_ring_buffer"}"#;
    let before = scrape(port).await;
    assert!(
        before.contains(&format!("{series} 0")),
        "at 0 before any loss:\n{before}"
    );
    let mut client = agent.observer().await;
    let mut stream = support::follow(&mut client).await;
    for i in 0..100 {
        agent.publish_flow(support::flow(i, 100));
    }
    let mut reported = 0;
    while reported == 0 {
        let response = support::next(&mut stream).await;
        if let Some(ResponseTypes::LostEvents(lost)) = response.response_types {
            assert_eq!(lost.source, LostEventSource::HubbleRingBuffer as i32);
            reported = lost.num_events_lost;
        }
    }
    assert_eq!(reported, 93);
    let text = scrape(port).await;
    assert!(
        text.contains(&format!("{series} 93")),
        "{series} 93 missing from:\n{text}"
    );
}
