//! TLS 1.3 with client certificates on the TCP listener, and certificate reload.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sightline_proto::observer::ServerStatusRequest;
use sightline_proto::observer::observer_client::ObserverClient;
use sightline_proto::peer::NotifyRequest;
use sightline_proto::peer::peer_client::PeerClient;
use support::{flow, start, uuids};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

const SERVER_NAME: &str = "node-1.default.hubble-grpc.cilium.io";

type Ca = CertifiedIssuer<'static, KeyPair>;

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

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Writes a server certificate from `server_ca` and trusts clients of `client_ca`.
    fn write(&self, server_ca: &Ca, client_ca: &Ca) {
        let (cert, key) = leaf(
            server_ca,
            "*.default.hubble-grpc.cilium.io",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        // Key first, then cert: the watcher must cope with a half-updated pair.
        std::fs::write(self.path("server.key"), key).unwrap();
        std::fs::write(self.path("server.crt"), cert).unwrap();
        std::fs::write(self.path("client-ca.crt"), client_ca.pem()).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }
}

fn client_config(trusted: &Ca, identity: Option<(String, String)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.der().clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

async fn tls_channel(address: SocketAddr, config: rustls::ClientConfig) -> Result<Channel, tonic::transport::Error> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Endpoint::from_shared(format!("http://{address}"))
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
}

/// Whether a ServerStatus call over a fresh TLS connection succeeds.
async fn status_ok(address: SocketAddr, config: rustls::ClientConfig) -> bool {
    match tls_channel(address, config).await {
        Ok(channel) => ObserverClient::new(channel)
            .server_status(ServerStatusRequest {})
            .await
            .is_ok(),
        Err(_) => false,
    }
}

async fn tls_agent(pki: &Pki, extra: &[&str]) -> support::TestAgent {
    let cert = format!("--tls-cert-file={}", pki.path("server.crt"));
    let key = format!("--tls-key-file={}", pki.path("server.key"));
    let cas = format!("--tls-client-ca-files={}", pki.path("client-ca.crt"));
    let mut args = vec![cert.as_str(), key.as_str(), cas.as_str(), "--tls-reload-interval=100ms"];
    args.extend_from_slice(extra);
    start(&args).await
}

#[tokio::test]
async fn trusted_clients_are_served_and_unknown_ones_refused() {
    let pki = Pki {
        dir: tempfile::tempdir().unwrap(),
    };
    let (server_ca, client_ca, stranger_ca) = (ca("server CA"), ca("client CA"), ca("stranger CA"));
    pki.write(&server_ca, &client_ca);
    let agent = tls_agent(&pki, &["--peers=node-1=10.0.0.1:4244"]).await;
    let address = agent.tcp.unwrap();

    let trusted = leaf(
        &client_ca,
        "relay.hubble-relay.cilium.io",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let stranger = leaf(
        &stranger_ca,
        "relay.hubble-relay.cilium.io",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    assert!(status_ok(address, client_config(&server_ca, Some(trusted.clone()))).await);
    assert!(
        !status_ok(address, client_config(&server_ca, Some(stranger))).await,
        "unknown CA refused"
    );
    assert!(
        !status_ok(address, client_config(&server_ca, None)).await,
        "no client certificate refused"
    );

    // With TLS on, peers carry the server name hubble-relay verifies.
    let mut peers = PeerClient::new(
        tls_channel(address, client_config(&server_ca, Some(trusted)))
            .await
            .unwrap(),
    );
    let first = peers
        .notify(NotifyRequest {})
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.tls.unwrap().server_name, SERVER_NAME);
}

#[tokio::test]
async fn certificates_reload_without_dropping_open_streams() {
    let pki = Pki {
        dir: tempfile::tempdir().unwrap(),
    };
    let (old_ca, new_ca) = (ca("old CA"), ca("new CA"));
    pki.write(&old_ca, &old_ca);
    let mut agent = tls_agent(&pki, &[]).await;
    let address = agent.tcp.unwrap();
    let old_client = leaf(&old_ca, "relay", ExtendedKeyUsagePurpose::ClientAuth);
    let new_client = leaf(&new_ca, "relay", ExtendedKeyUsagePurpose::ClientAuth);

    let channel = tls_channel(address, client_config(&old_ca, Some(old_client.clone())))
        .await
        .unwrap();
    let mut open = support::follow(&mut ObserverClient::new(channel)).await;

    pki.write(&new_ca, &new_ca);
    let reloaded = tokio::time::timeout(Duration::from_secs(10), async {
        while !status_ok(address, client_config(&new_ca, Some(new_client.clone()))).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(reloaded.is_ok(), "new certificates were never picked up");
    assert!(
        !status_ok(address, client_config(&old_ca, Some(old_client))).await,
        "old CA no longer accepted"
    );

    agent.publish_flow(flow(1, 100));
    let got = support::next(&mut open).await;
    assert_eq!(
        uuids(&[got]),
        vec!["f1"],
        "the stream opened before the reload still works"
    );
}

#[tokio::test]
async fn broken_certificate_files_are_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.crt");
    std::fs::write(&cert, "not a certificate").unwrap();
    let args = sightline_agent::cli::Args::load_from(
        [
            "sightline-agent",
            "--listen-address=127.0.0.1:0",
            "--socket-path=",
            &format!("--tls-cert-file={}", cert.display()),
            &format!("--tls-key-file={}", cert.display()),
        ]
        .map(std::ffi::OsString::from)
        .to_vec(),
    )
    .unwrap();
    let err = sightline_agent::app::Agent::start(&args)
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains(&cert.display().to_string()), "{err}");
    assert!(Path::new(&cert).exists());
}

#[tokio::test]
async fn tcp_without_certificates_refuses_to_start_unless_tls_is_disabled() {
    use sightline_agent::app::Agent;
    use sightline_agent::cli::Args;

    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hubble.sock");
    let cert = dir.path().join("server.crt");
    let start_with = async |extra: &[&str]| {
        let mut argv = vec![
            "sightline-agent",
            "--listen-address",
            "127.0.0.1:0",
            "--k8s-disabled",
            "--socket-path",
            socket.to_str().unwrap(),
        ];
        argv.extend_from_slice(extra);
        Agent::start(&Args::load_from(argv.into_iter().map(Into::into).collect()).unwrap()).await
    };
    let refused = |result: Result<Agent, sightline_agent::app::AppError>| match result {
        Ok(_) => panic!("the agent started"),
        Err(err) => err.to_string(),
    };
    let message = refused(start_with(&[]).await);
    assert!(
        message.contains("--tls-cert-file and --tls-key-file") && message.contains("--disable-server-tls"),
        "{message}"
    );
    let message = refused(start_with(&["--tls-cert-file", cert.to_str().unwrap()]).await);
    assert!(message.contains("--tls-key-file is not set"), "{message}");
    assert!(!socket.exists(), "nothing was served");

    let agent = start_with(&["--disable-server-tls"]).await.unwrap();
    assert!(agent.server.local_addr().is_some());
    drop(agent);
    // Without TCP there is nothing to encrypt.
    start_with(&["--listen-address", ""]).await.unwrap();
}
