//! The relay's metrics server with `--metrics-server-tls-*`: TLS with a client
//! certificate required, as the agent's.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::certs::{Ca, Issued};
use support::relay;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client_config(ca: &Ca, identity: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).expect("CA pem"))
        .expect("CA");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some(issued) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&issued.cert)
                    .expect("cert file")
                    .map(|c| c.expect("cert"))
                    .collect(),
                PrivateKeyDer::from_pem_file(&issued.key).expect("key"),
            )
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    })
}

/// The response to `GET /metrics` over TLS, or the error that ended the exchange.
async fn scrape(address: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<String> {
    let tcp = tokio::net::TcpStream::connect(address).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("metrics.relay.test").expect("name");
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut body = String::new();
    tls.read_to_string(&mut body).await?;
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_over_mutual_tls_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new("Metrics CA");
    let server = ca.issue(dir.path(), "metrics", &["metrics.relay.test"]);
    let scraper = ca.issue(dir.path(), "prometheus", &["prometheus.test"]);
    let ca_file = ca.write_ca(dir.path(), "ca.crt");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let relay = relay(&[
        "--disable-client-tls",
        "--metrics-server-tls-cert-file",
        &path(&server.cert),
        "--metrics-server-tls-key-file",
        &path(&server.key),
        "--metrics-server-tls-client-ca-files",
        &path(&ca_file),
    ])
    .await;
    let address = relay.metrics_address.expect("metrics enabled");

    let body = scrape(address, client_config(&ca, Some(&scraper)))
        .await
        .expect("a scraper with a certificate of the CA is served");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("hubble_relay_flows_forwarded_total"), "{body}");

    let refused = scrape(address, client_config(&ca, None)).await;
    assert!(
        refused.as_ref().map_or(true, |body| !body.contains("hubble_relay")),
        "a scraper without a client certificate got metrics: {refused:?}"
    );

    let mut plain = tokio::net::TcpStream::connect(address).await.expect("connect");
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("hubble_relay"),
        "plaintext HTTP got metrics"
    );
}

#[tokio::test]
async fn a_certificate_without_a_key_is_a_startup_error() {
    let args = sightline_relay::config::Args::load(
        [
            "sightline-relay",
            "--disable-client-tls",
            "--disable-server-tls",
            "--listen-address",
            "127.0.0.1:0",
            "--health-listen-address",
            "",
            "--metrics-listen-address",
            "127.0.0.1:0",
            "--metrics-server-tls-cert-file",
            "/nonexistent/metrics.crt",
        ]
        .into_iter()
        .map(Into::into)
        .collect(),
    )
    .expect("flags parse");
    let error = sightline_relay::app::start(args).await.err().expect("refused");
    assert!(error.to_string().contains("key file"), "{error}");
}
