//! HTTPS served directly (`tls_cert`/`tls_key`): a client trusting the right CA is served, one
//! trusting another is refused; reloading the files switches new connections to the new
//! certificate while an established connection goes on; a broken file keeps the old one.
//! Test certificates: `tests/data/tls/README.md`.

use crate::common;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use sealkit_server::net::{serve_on, TlsFiles};
use sealkit_server::Config;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

fn client_trusting(ca: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(data(ca)).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn connect(addr: SocketAddr, ca: &str) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    client_trusting(ca)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// GET /healthz on a keep-alive connection; returns the status code.
async fn healthz(stream: &mut TlsStream<TcpStream>) -> u16 {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a response");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return head.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_reload() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::copy(data("server-a.pem"), &cert).unwrap();
    std::fs::copy(data("server-a.key"), &key).unwrap();
    let tls = Arc::new(TlsFiles::load(&cert, &key).unwrap());

    let store = Arc::new(
        sealkit_server::store::sqlite::SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap(),
    );
    let harness = common::harness_on(Config::default(), store).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config::default();
    let served = tls.clone();
    tokio::spawn(async move {
        serve_on(
            listener,
            harness.router,
            &config,
            Some(served),
            std::future::pending(),
        )
        .await
    });

    let mut first = connect(addr, "ca-a.pem").await.unwrap();
    assert_eq!(healthz(&mut first).await, 200);
    assert!(
        connect(addr, "ca-b.pem").await.is_err(),
        "a client trusting another CA accepted certificate A"
    );
    // Plain HTTP on the TLS port is not served.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = plain.read_to_end(&mut reply).await;
    assert!(!String::from_utf8_lossy(&reply).contains("200 OK"));

    // A half-written replacement is refused and A stays in use.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    assert!(tls.reload().is_err());
    let mut still_a = connect(addr, "ca-a.pem").await.unwrap();
    assert_eq!(healthz(&mut still_a).await, 200);

    std::fs::copy(data("server-b.pem"), &cert).unwrap();
    std::fs::copy(data("server-b.key"), &key).unwrap();
    tls.reload().unwrap();
    let mut second = connect(addr, "ca-b.pem").await.unwrap();
    assert_eq!(healthz(&mut second).await, 200);
    assert!(
        connect(addr, "ca-a.pem").await.is_err(),
        "new connections still get certificate A after the reload"
    );
    // The connection made before the reload was not dropped.
    assert_eq!(healthz(&mut first).await, 200);
}

#[test]
fn mismatched_or_missing_files_are_typed_errors() {
    assert!(TlsFiles::load(&data("server-a.pem"), &data("server-b.key")).is_err());
    assert!(TlsFiles::load(&data("missing.pem"), &data("server-a.key")).is_err());
    assert!(TlsFiles::load(&data("server-a.key"), &data("server-a.key")).is_err());
}
