//! The files the demo and process tests use: a real mutual-TLS handshake with
//! Hubble's server names succeeds, before and after the CA has been rotated.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use sightline_common::tls::{KeyPairFiles, client_config, server_config};
use sightline_operator::tls::Lifetimes;
use sightline_operator::tls::files::{CertificateFiles, FileIssuer, write_certificate_files};
use sightline_operator::tls::rotation::CaEvent;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

fn pair(cert: &std::path::Path, key: &std::path::Path) -> KeyPairFiles {
    KeyPairFiles {
        cert: cert.to_owned(),
        key: key.to_owned(),
    }
}

/// Handshakes a client (with its certificate) against a server, both from files.
async fn handshake(server: KeyPairFiles, client: KeyPairFiles, files: &CertificateFiles, server_name: &str) {
    let acceptor = TlsAcceptor::from(Arc::new(
        server_config(&server, std::slice::from_ref(&files.ca)).unwrap(),
    ));
    let connector = TlsConnector::from(Arc::new(
        client_config(std::slice::from_ref(&files.ca), Some(&client)).unwrap(),
    ));
    let (client_io, server_io) = tokio::io::duplex(16 * 1024);
    let serve = tokio::spawn(async move {
        let mut stream = acceptor.accept(server_io).await.unwrap();
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        stream.write_all(&byte).await.unwrap();
        stream.shutdown().await.unwrap();
    });
    let name = ServerName::try_from(server_name.to_owned()).unwrap();
    let mut stream = connector.connect(name, client_io).await.unwrap();
    stream.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).await.unwrap();
    assert_eq!(&byte, b"x");
    serve.await.unwrap();
}

async fn every_hubble_connection_works(files: &CertificateFiles) {
    // The relay dials an agent by its node's name under the wildcard.
    handshake(
        pair(&files.agent_cert, &files.agent_key),
        pair(&files.relay_client_cert, &files.relay_client_key),
        files,
        "node-1.default.hubble-grpc.cilium.io",
    )
    .await;
    // The CLI talks to an agent directly, and to the relay as Hubble UI does.
    handshake(
        pair(&files.agent_cert, &files.agent_key),
        pair(&files.cli_cert, &files.cli_key),
        files,
        "node-2.default.hubble-grpc.cilium.io",
    )
    .await;
    handshake(
        pair(&files.relay_server_cert, &files.relay_server_key),
        pair(&files.cli_cert, &files.cli_key),
        files,
        "ui.hubble-relay.cilium.io",
    )
    .await;
}

#[tokio::test]
async fn written_files_give_working_mutual_tls_with_hubbles_names() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_certificate_files(dir.path(), "default").unwrap();
    every_hubble_connection_works(&files).await;
}

#[tokio::test]
async fn files_keep_working_through_a_ca_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let hour = Duration::from_secs(3600);
    let mut issuer = FileIssuer::new(
        dir.path(),
        "default",
        Lifetimes {
            ca_validity: hour * 48,
            cert_validity: hour * 12,
            renew_before: hour * 3,
            propagation: hour,
        },
    )
    .unwrap();
    let start = OffsetDateTime::now_utc() - time::Duration::hours(60);
    let mut completed = 0;
    for step in 0..=60 {
        let plan = issuer.update(start + time::Duration::hours(step)).unwrap();
        completed += usize::from(plan.ca_event == Some(CaEvent::OldCaRetired));
    }
    assert_eq!(completed, 1, "a 48 h CA rotates once in 60 h");
    // The certificates in the files were issued in the simulated past and are valid now.
    every_hubble_connection_works(issuer.files()).await;
}
