//! The relay binary as deployed: flags from the environment (the command line
//! winning), gRPC health on its own port, reflection on the API, and SIGTERM ending
//! open streams and the process within 5 s.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sightline_proto::observer::GetFlowsRequest;
use support::agent::FakeAgent;
use support::streams::flow_node;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Kills the relay if the test fails before it does.
struct Relay(Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn channel(port: u16) -> Channel {
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).expect("uri");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(err) => assert!(Instant::now() < deadline, "relay not listening on {port}: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reads_its_environment_serves_health_and_reflection_and_stops_on_sigterm() {
    let agent = FakeAgent::start("node-a", &[]).await;
    agent.emit_every(Duration::from_millis(10), Duration::ZERO);
    let (api, health) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_sightline-relay"))
        // Overridden on the command line: the relay must not try port 1.
        .env("SIGHTLINE_RELAY_LISTEN_ADDRESS", "127.0.0.1:1")
        .arg("--listen-address")
        .arg(format!("127.0.0.1:{api}"))
        .env("SIGHTLINE_RELAY_HEALTH_LISTEN_ADDRESS", format!("127.0.0.1:{health}"))
        .env("SIGHTLINE_RELAY_METRICS_LISTEN_ADDRESS", "")
        .env("SIGHTLINE_RELAY_PEERS", format!("node-a={}", agent.address))
        .env("SIGHTLINE_RELAY_DISABLE_CLIENT_TLS", "true")
        .env("SIGHTLINE_RELAY_DISABLE_SERVER_TLS", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("relay starts");
    let mut relay = Relay(child);

    let mut health_client = HealthClient::new(channel(health).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    for service in ["hubble.server.Observer", ""] {
        loop {
            let status = health_client
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await
                .expect("health check")
                .into_inner()
                .status;
            if status == ServingStatus::Serving as i32 {
                break;
            }
            assert!(Instant::now() < deadline, "{service:?} not SERVING: {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let api_channel = channel(api).await;
    let mut reflection = ServerReflectionClient::new(api_channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers
        .message()
        .await
        .expect("reflection answer")
        .and_then(|a| a.message_response)
    else {
        panic!("no service list");
    };
    assert!(list.service.iter().any(|s| s.name == "observer.Observer"), "{list:?}");

    let mut stream = sightline_proto::observer::observer_client::ObserverClient::new(api_channel)
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("GetFlows")
        .into_inner();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a flow within 10 s")
            .expect("stream ok")
            .expect("stream open");
        if flow_node(&message) == Some("node-a") {
            break;
        }
    }

    let pid = relay.0.id().to_string();
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("the stream ends within 5 s of SIGTERM")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without saying why"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    let exit = loop {
        if let Some(exit) = relay.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "relay still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exit.success(), "{exit}");
}
