//! A broken update of the relay's own certificate (garbage files, or a key that
//! does not match the certificate) keeps the old material: open streams keep
//! flowing, new clients still connect with the old certificate, and the failure is
//! logged. A good update afterwards is taken.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, ServerStatusRequest};
use sightline_relay::address::PeerAddress;
use sightline_relay::app::{self, RunningRelay};
use sightline_relay::config::Args;
use sightline_relay::dial::Dialer;
use sightline_relay::tls::{Reloading, client_config};
use support::agent::FakeAgent;
use support::certs::{Ca, Issued};
use support::eventually;
use support::streams::{flow_node, next};
use tonic::Streaming;

const SERVER_NAME: &str = "relay.hubble-relay.cilium.io";

/// Everything the relay logs, as text.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn install() -> Self {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    }

    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).matches(needle).count()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn tls_relay(agent: &FakeAgent, identity: &Issued) -> RunningRelay {
    let peers = format!("{}={}", agent.name, agent.address);
    let argv = [
        "sightline-relay",
        "--listen-address",
        "127.0.0.1:0",
        "--health-listen-address",
        "",
        "--metrics-listen-address",
        "",
        "--disable-client-tls",
        "--peers",
        &peers,
        "--tls-relay-server-cert-file",
        identity.cert.to_str().unwrap(),
        "--tls-relay-server-key-file",
        identity.key.to_str().unwrap(),
    ];
    let args = Args::load(argv.into_iter().map(Into::into).collect()).expect("relay flags");
    app::start(args).await.expect("relay starts")
}

/// The certificate the relay presents to a new TLS client.
async fn presented_certificate(relay: &RunningRelay, ca: &Path) -> CertificateDer<'static> {
    let config = Arc::new(client_config(&[ca.to_owned()], None).unwrap());
    let tcp = tokio::net::TcpStream::connect(relay.api_address).await.unwrap();
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("a new client completes the handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
}

/// A gRPC client of the relay over TLS, verifying it against `ca`.
async fn client(relay: &RunningRelay, ca: &Path) -> ObserverClient<tonic::transport::Channel> {
    let ca = vec![ca.to_owned()];
    let tls = Reloading::watch("test client", Vec::new(), Duration::from_secs(3600), move || {
        client_config(&ca, None)
    })
    .unwrap();
    let dialer = Dialer::new(Some(tls), Duration::from_secs(10));
    let address = PeerAddress::parse(&relay.api_address.to_string()).unwrap();
    ObserverClient::new(
        dialer
            .connect(&address, Some(SERVER_NAME))
            .await
            .expect("new connection"),
    )
}

/// The first certificate of a PEM file.
fn der(pem_file: &Path) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(pem_file).unwrap()
}

async fn flows_keep_coming(stream: &mut Streaming<sightline_proto::observer::GetFlowsResponse>) {
    let mut flows = 0;
    while flows < 5 {
        if flow_node(&next(stream).await.expect("stream still open")).is_some() {
            flows += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_certificate_update_keeps_the_old_material_and_a_good_one_is_taken() {
    let logs = Logs::install();
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Sightline relay CA");
    let ca_file = ca.write_ca(dir.path(), "ca.crt");
    let first = ca.issue(dir.path(), "relay", &[SERVER_NAME]);
    let first_der = der(&first.cert);
    let agent = FakeAgent::start("node-a", &[]).await;
    agent.emit_every(Duration::from_millis(10), Duration::ZERO);
    let relay = tls_relay(&agent, &first).await;
    support::until_connected(&relay, 1).await;
    let mut stream = client(&relay, &ca_file)
        .await
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("GetFlows")
        .into_inner();
    flows_keep_coming(&mut stream).await;
    assert_eq!(presented_certificate(&relay, &ca_file).await, first_der);

    let refused = "TLS files changed but do not load; keeping the previous ones";
    let staged = tempfile::tempdir().unwrap();
    let second = ca.issue(staged.path(), "relay", &[SERVER_NAME]);
    let broken_updates: [(&str, Vec<u8>, Vec<u8>); 2] = [
        ("garbage", b"not a certificate".to_vec(), b"not a key".to_vec()),
        (
            "a key that does not match the certificate",
            std::fs::read(&second.cert).unwrap(),
            std::fs::read(&first.key).unwrap(),
        ),
    ];
    for (n, (what, cert, key)) in broken_updates.into_iter().enumerate() {
        std::fs::write(&first.cert, cert).unwrap();
        std::fs::write(&first.key, key).unwrap();
        eventually(Duration::from_secs(15), &format!("{what}: no warning logged"), || {
            logs.count(refused) > n
        })
        .await;
        flows_keep_coming(&mut stream).await;
        assert_eq!(
            presented_certificate(&relay, &ca_file).await,
            first_der,
            "{what}: a new client gets the old certificate"
        );
        let status = client(&relay, &ca_file)
            .await
            .server_status(ServerStatusRequest {})
            .await
            .expect("a new client is served");
        assert!(status.into_inner().version.starts_with("sightline-relay"));
    }

    // A good update: both files of the second identity.
    let second_der = der(&second.cert);
    std::fs::copy(&second.key, &first.key).unwrap();
    std::fs::copy(&second.cert, &first.cert).unwrap();
    eventually(Duration::from_secs(15), "the good update was not taken", || {
        logs.count("TLS material reloaded") >= 1
    })
    .await;
    assert_eq!(presented_certificate(&relay, &ca_file).await, second_der);
    flows_keep_coming(&mut stream).await;
    relay.shutdown().await;
}
