//! A broken update of the agent's own certificate (garbage files, or a key that
//! does not match the certificate) keeps the old material: a follow stream opened
//! over mTLS keeps flowing, new clients are served with the old leaf, and the
//! refusal is logged. A good update afterwards is taken by new clients.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::observer::{GetFlowsRequest, GetFlowsResponse, ServerStatusRequest};
use support::{flow, start, uuids};
use tokio::net::TcpStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

const SERVER_NAME: &str = "node-1.default.hubble-grpc.cilium.io";
const REFUSED: &str = "TLS files changed but do not load; keeping the previous ones";
const RELOADED: &str = "TLS material reloaded";

type Ca = CertifiedIssuer<'static, KeyPair>;

/// Everything the agent logs, as text.
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

    /// Lines about the agent's server certificate that contain `needle`.
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|line| line.contains("agent server certificate") && line.contains(needle))
            .count()
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

/// Polls `done` until it holds; panics with `what` after `deadline`.
async fn eventually(deadline: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "{what} within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// (certificate PEM, key PEM) signed by `ca`.
fn leaf(ca: &Ca, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.extended_key_usages = vec![usage];
    (params.signed_by(&key, ca).unwrap().pem(), key.serialize_pem())
}

/// Replaces `path` in one step (write aside, rename over), so the agent's file
/// watcher sees either the old or the new bytes and re-reads exactly once.
fn replace(path: &Path, contents: &[u8]) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, contents).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

fn client_config(trusted: &Ca, identity: &(String, String)) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(identity.0.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(identity.1.as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// The leaf certificate the agent presents to a new mTLS client.
async fn presented_leaf(address: SocketAddr, config: Arc<rustls::ClientConfig>) -> CertificateDer<'static> {
    let tcp = TcpStream::connect(address).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp)
        .await
        .expect("a new client completes the handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned()
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

struct Identity {
    cert: PathBuf,
    key: PathBuf,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_certificate_update_keeps_the_old_material_and_a_good_one_is_taken() {
    let logs = Logs::install();
    let dir = tempfile::tempdir().unwrap();
    let files = Identity {
        cert: dir.path().join("server.crt"),
        key: dir.path().join("server.key"),
    };
    let client_ca_file = dir.path().join("client-ca.crt");
    let (server_ca, client_ca) = (ca("server CA"), ca("client CA"));
    let first = leaf(
        &server_ca,
        "*.default.hubble-grpc.cilium.io",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let second = leaf(
        &server_ca,
        "*.default.hubble-grpc.cilium.io",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    std::fs::write(&files.cert, &first.0).unwrap();
    std::fs::write(&files.key, &first.1).unwrap();
    std::fs::write(&client_ca_file, client_ca.pem()).unwrap();
    let first_leaf = CertificateDer::from_pem_slice(first.0.as_bytes()).unwrap();
    let second_leaf = CertificateDer::from_pem_slice(second.0.as_bytes()).unwrap();

    let mut agent = start(&[
        &format!("--tls-cert-file={}", files.cert.display()),
        &format!("--tls-key-file={}", files.key.display()),
        &format!("--tls-client-ca-files={}", client_ca_file.display()),
        "--tls-reload-interval=50ms",
    ])
    .await;
    let address = agent.tcp.unwrap();
    let relay = leaf(
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
    assert_eq!(presented_leaf(address, config.clone()).await, first_leaf);

    // Each step changes one file in one rename, so each is re-read exactly once and
    // refused exactly once: the n-th refusal is this step's.
    let broken_updates: [(&str, &Path, &[u8]); 4] = [
        ("a garbage key", &files.key, b"not a key"),
        ("a garbage certificate", &files.cert, b"not a certificate"),
        (
            "the old key beside a garbage certificate",
            &files.key,
            first.1.as_bytes(),
        ),
        (
            "a certificate that does not match the key",
            &files.cert,
            second.0.as_bytes(),
        ),
    ];
    for (n, (what, path, contents)) in broken_updates.into_iter().enumerate() {
        replace(path, contents);
        eventually(Duration::from_secs(15), &format!("{what}: refusal logged"), || {
            logs.count(REFUSED) > n
        })
        .await;
        assert_eq!(logs.count(REFUSED), n + 1, "{what}: one refusal per change");
        stream_still_flows(&mut agent, &mut open, 2 + n as u64, what).await;
        assert_eq!(
            presented_leaf(address, config.clone()).await,
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
    assert_eq!(logs.count(RELOADED), 0, "nothing broken was taken");

    // The good update: the second leaf's key beside the second leaf.
    replace(&files.key, second.1.as_bytes());
    eventually(Duration::from_secs(15), "the good update reloaded", || {
        logs.count(RELOADED) == 1
    })
    .await;
    assert_eq!(
        presented_leaf(address, config.clone()).await,
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
