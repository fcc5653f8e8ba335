//! A broken update of the agent's own certificate (garbage files, or a key that
//! does not match the certificate) keeps the old material: a follow stream opened
//! over mTLS keeps flowing, new clients are served with the old leaf, and the
//! refusal is logged. A good update afterwards is taken by new clients.
#![allow(clippy::unwrap_used)]

mod support;
#[path = "tls_update_support/mod.rs"]
mod tls_update;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, GetFlowsResponse, ServerStatusRequest};
use support::{flow, start, uuids};
use tls_update::{Ca, File, Leaf, Logs, REFUSED, RELOADED, ServerFiles, broken_updates, ca, presented_leaf};
use tokio::net::TcpStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

const SERVER_NAME: &str = "node-1.default.hubble-grpc.cilium.io";
/// What the agent names its server certificate in its log lines.
const SUBJECT: &str = "agent server certificate";

/// Polls `done` until it holds; panics with `what` after `deadline`.
async fn eventually(deadline: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "{what} within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn client_config(trusted: &Ca, identity: &Leaf) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![identity.der()],
            PrivateKeyDer::from_pem_slice(identity.key.as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

async fn observer(address: SocketAddr, config: Arc<rustls::ClientConfig>) -> ObserverClient<Channel> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let channel = Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(address).await?;
                let tls = connector
                    .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .expect("a new client connects");
    ObserverClient::new(channel)
}

/// Publishes one flow and expects it on the stream opened before any update.
async fn stream_still_flows(
    agent: &mut support::TestAgent,
    stream: &mut Streaming<GetFlowsResponse>,
    id: u64,
    what: &str,
) {
    agent.publish_flow(flow(id, 100 + id as i64));
    let got = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap_or_else(|_| panic!("{what}: the open stream stalled"))
        .unwrap_or_else(|err| panic!("{what}: the open stream failed: {err}"))
        .unwrap_or_else(|| panic!("{what}: the open stream ended"));
    assert_eq!(uuids(&[got]), vec![format!("f{id}")], "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_certificate_update_keeps_the_old_material_and_a_good_one_is_taken() {
    let logs = Logs::install();
    let (server_ca, client_ca) = (ca("server CA"), ca("client CA"));
    let server_name = "*.default.hubble-grpc.cilium.io";
    let first = Leaf::issue(&server_ca, server_name, ExtendedKeyUsagePurpose::ServerAuth);
    let second = Leaf::issue(&server_ca, server_name, ExtendedKeyUsagePurpose::ServerAuth);
    let files = ServerFiles::write(&first);
    let client_ca_file = files.write_beside("client-ca.crt", &client_ca.pem());
    let (first_leaf, second_leaf) = (first.der(), second.der());
    let refusals = || logs.lines_with(&[SUBJECT, REFUSED]);
    let reloads = || logs.lines_with(&[SUBJECT, RELOADED]);

    let mut agent = start(&[
        &format!("--tls-cert-file={}", files.cert.display()),
        &format!("--tls-key-file={}", files.key.display()),
        &format!("--tls-client-ca-files={}", client_ca_file.display()),
        "--tls-reload-interval=50ms",
    ])
    .await;
    let address = agent.tcp.unwrap();
    let relay = Leaf::issue(
        &client_ca,
        "relay.hubble-relay.cilium.io",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let config = client_config(&server_ca, &relay);

    let mut open = observer(address, config.clone())
        .await
        .get_flows(GetFlowsRequest {
            follow: true,
            ..Default::default()
        })
        .await
        .expect("GetFlows over mTLS")
        .into_inner();
    stream_still_flows(&mut agent, &mut open, 1, "before any update").await;
    assert_eq!(presented_leaf(address, config.clone(), SERVER_NAME).await, first_leaf);

    for (n, (what, file, contents)) in broken_updates(&first, &second).into_iter().enumerate() {
        files.replace(file, contents);
        eventually(Duration::from_secs(15), &format!("{what}: refusal logged"), || {
            refusals() > n
        })
        .await;
        assert_eq!(refusals(), n + 1, "{what}: one refusal per change");
        stream_still_flows(&mut agent, &mut open, 2 + n as u64, what).await;
        assert_eq!(
            presented_leaf(address, config.clone(), SERVER_NAME).await,
            first_leaf,
            "{what}: a new client gets the old leaf"
        );
        let status = observer(address, config.clone())
            .await
            .server_status(ServerStatusRequest {})
            .await
            .unwrap_or_else(|err| panic!("{what}: a new client is not served: {err}"));
        assert!(status.into_inner().version.starts_with("sightline"));
    }
    assert_eq!(reloads(), 0, "nothing broken was taken");

    // The good update: the second leaf's key beside the second leaf.
    files.replace(File::Key, second.key.as_bytes());
    eventually(Duration::from_secs(15), "the good update reloaded", || reloads() == 1).await;
    assert_eq!(
        presented_leaf(address, config.clone(), SERVER_NAME).await,
        second_leaf,
        "new clients get the new leaf"
    );
    stream_still_flows(&mut agent, &mut open, 10, "after the good update").await;
    let status = observer(address, config)
        .await
        .server_status(ServerStatusRequest {})
        .await
        .expect("a new client is served with the new leaf");
    assert!(status.into_inner().version.starts_with("sightline"));
}
