//! A broken update of the relay's own certificate (garbage files, or a key that
//! does not match the certificate) keeps the old material: open streams keep
//! flowing, new clients still connect with the old certificate, and the failure is
//! logged. A good update afterwards is taken.
#![allow(clippy::unwrap_used)]

mod support;
#[path = "../../agent/tests/tls_update_support/mod.rs"]
mod tls_update;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose;
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, ServerStatusRequest};
use sightline_relay::address::PeerAddress;
use sightline_relay::app::{self, RunningRelay};
use sightline_relay::config::Args;
use sightline_relay::dial::Dialer;
use sightline_relay::tls::{Reloading, client_config};
use support::agent::FakeAgent;
use support::eventually;
use support::streams::{flow_node, next};
use tls_update::{File, Leaf, Logs, REFUSED, RELOADED, ServerFiles, broken_updates, ca, presented_leaf};
use tonic::Streaming;

const SERVER_NAME: &str = "relay.hubble-relay.cilium.io";

async fn tls_relay(agent: &FakeAgent, identity: &ServerFiles) -> RunningRelay {
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

/// The certificate the relay presents to a new TLS client verifying it against `ca`.
async fn presented_certificate(relay: &RunningRelay, ca: &Path) -> rustls::pki_types::CertificateDer<'static> {
    let config = Arc::new(client_config(&[ca.to_owned()], None).unwrap());
    presented_leaf(relay.api_address, config, SERVER_NAME).await
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
    let ca = ca("Sightline relay CA");
    let first = Leaf::issue(&ca, SERVER_NAME, ExtendedKeyUsagePurpose::ServerAuth);
    let second = Leaf::issue(&ca, SERVER_NAME, ExtendedKeyUsagePurpose::ServerAuth);
    let files = ServerFiles::write(&first);
    let ca_file = files.write_beside("ca.crt", &ca.pem());
    let first_der = first.der();
    let agent = FakeAgent::start("node-a", &[]).await;
    agent.emit_every(Duration::from_millis(10), Duration::ZERO);
    let relay = tls_relay(&agent, &files).await;
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

    for (n, (what, file, contents)) in broken_updates(&first, &second).into_iter().enumerate() {
        files.replace(file, contents);
        eventually(Duration::from_secs(15), &format!("{what}: no warning logged"), || {
            logs.lines_with(&[REFUSED]) > n
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

    // The good update: the second identity's key beside its certificate.
    files.replace(File::Key, second.key.as_bytes());
    eventually(Duration::from_secs(15), "the good update was not taken", || {
        logs.lines_with(&[RELOADED]) >= 1
    })
    .await;
    assert_eq!(presented_certificate(&relay, &ca_file).await, second.der());
    flows_keep_coming(&mut stream).await;
    relay.shutdown().await;
}
