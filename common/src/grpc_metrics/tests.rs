#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tonic::transport::{Channel, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::*;
use crate::metrics_server::{Format, encode};

#[test]
fn messages_are_counted_by_their_prefixes_across_chunks() {
    let mut framing = Framing::default();
    // Two messages of 3 and 0 bytes, then the prefix of a third split in two.
    let stream = [
        0, 0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, b'x', b'y',
    ];
    assert_eq!(framing.messages_in(&stream[..2]), 0);
    assert_eq!(framing.messages_in(&stream[2..7]), 1);
    assert_eq!(framing.messages_in(&stream[7..15]), 1);
    assert_eq!(framing.messages_in(&stream[15..]), 1);
    assert_eq!(
        framing.messages_in(&[0, 0, 0, 0, 0]),
        1,
        "the previous message was complete"
    );
}

fn samples(text: &str, prefix: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_with_go_grpc_prometheus_names_and_labels() {
    let metrics = GrpcServerMetrics::new(&[tonic_health::pb::FILE_DESCRIPTOR_SET]).unwrap();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status("shop", ServingStatus::Serving).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .layer(metrics.layer())
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel.clone());
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    client.check(check("shop")).await.unwrap();
    client.check(check("shop")).await.unwrap();
    let missing = client.check(check("nowhere")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let mut watch = client.watch(check("shop")).await.unwrap().into_inner();
    watch.message().await.unwrap().unwrap();
    drop(watch);
    // A path no service registered: not counted.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let unknown = grpc
        .unary::<_, HealthCheckRequest, tonic_prost::ProstCodec<_, _>>(
            tonic::Request::new(check("shop")),
            http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Probe"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::Unimplemented);

    let labels = |method: &str, kind: &str| {
        format!(r#"grpc_method="{method}",grpc_service="grpc.health.v1.Health",grpc_type="{kind}""#)
    };
    let mut text = String::new();
    for _ in 0..50 {
        text = encode(&registry, Format::Prometheus);
        if text.contains("grpc_code=\"Canceled\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        samples(&text, "grpc_server_started_total"),
        [
            format!("grpc_server_started_total{{{}}} 3", labels("Check", "unary")),
            format!("grpc_server_started_total{{{}}} 1", labels("Watch", "server_stream")),
        ]
    );
    assert_eq!(
        samples(&text, "grpc_server_handled_total"),
        [
            format!(
                "grpc_server_handled_total{{grpc_code=\"Canceled\",{}}} 1",
                labels("Watch", "server_stream")
            ),
            format!(
                "grpc_server_handled_total{{grpc_code=\"NotFound\",{}}} 1",
                labels("Check", "unary")
            ),
            format!(
                "grpc_server_handled_total{{grpc_code=\"OK\",{}}} 2",
                labels("Check", "unary")
            ),
        ]
    );
    assert_eq!(
        samples(&text, "grpc_server_msg_received_total"),
        [
            format!("grpc_server_msg_received_total{{{}}} 3", labels("Check", "unary")),
            format!(
                "grpc_server_msg_received_total{{{}}} 1",
                labels("Watch", "server_stream")
            ),
        ]
    );
    assert_eq!(
        samples(&text, "grpc_server_msg_sent_total"),
        [
            format!("grpc_server_msg_sent_total{{{}}} 2", labels("Check", "unary")),
            format!("grpc_server_msg_sent_total{{{}}} 1", labels("Watch", "server_stream")),
        ]
    );
}
