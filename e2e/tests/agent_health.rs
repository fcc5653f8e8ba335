//! The agent's plaintext health endpoint, for the kubelet's gRPC probes (which cannot
//! speak TLS): SERVING for the whole server and for Hubble's service name, and
//! nothing else on that port.

#[allow(dead_code)]
mod binaries;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use binaries::{binary, free_port};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(port: u16) -> Channel {
    let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).expect("uri");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(error) => assert!(Instant::now() < deadline, "no health endpoint on {port}: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn probes_get_serving_in_plaintext_while_the_api_needs_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let health = free_port();
    // The API on TCP requires TLS (no certificate is given, so it is off here);
    // the health port is plaintext regardless.
    let _agent = Agent(
        Command::new(binary("sightline-agent"))
            .args([
                "--k8s-disabled",
                "--synthetic-flows-per-second",
                "10",
                "--listen-address",
                "",
            ])
            .arg("--health-listen-address")
            .arg(format!("127.0.0.1:{health}"))
            .arg("--socket-path")
            .arg(dir.path().join("hubble.sock"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("agent starts"),
    );
    let mut client = HealthClient::new(connect(health).await);
    for service in ["", "hubble.server.Observer"] {
        let status = client
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    // Only health: the Hubble API is not reachable through the probe port.
    let mut observer = sightline_proto::observer::observer_client::ObserverClient::new(connect(health).await);
    let refused = observer
        .server_status(sightline_proto::observer::ServerStatusRequest {})
        .await
        .expect_err("no observer on the health port");
    assert_eq!(refused.code(), tonic::Code::Unimplemented, "{refused}");
}

#[test]
fn a_bad_health_address_is_a_startup_error_naming_the_flag() {
    let output = Command::new(binary("sightline-agent"))
        .args([
            "--k8s-disabled",
            "--listen-address",
            "",
            "--health-listen-address",
            "4246",
        ])
        .output()
        .expect("agent runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--health-listen-address \"4246\""), "{stderr}");
}
