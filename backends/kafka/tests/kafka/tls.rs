//! TLS (crate feature `tls`: librdkafka built with OpenSSL): messages and
//! state over `rdkafka.security.protocol=SSL` with a private CA, and an
//! untrusted certificate failing with a typed error.
//!
//! Tansu 0.6.0 does not terminate TLS itself (its `--cert` listener still
//! speaks plaintext), so the test runs a broker of its own
//! (`KAFKA_BROKER_BIN`, as `scripts/services.sh` writes it) on a loopback
//! port, advertising the port of a TLS terminator (rustls) that the test
//! runs in front of it: every connection the client makes, bootstrap and
//! broker alike, is TLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use multiagents_core::conformance::{tls_certificates, unique};
use multiagents_core::{Envelope, ErrorKind, StateStore, SubscribeMode, SubscribeOptions, Transport};
use multiagents_kafka::{KafkaConfig, KafkaStore, KafkaTransport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

use super::support::next;

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `KAFKA_BROKER_BIN`, or `None` (skipped; required under
/// `MULTIAGENTS_REQUIRE_BACKENDS=1`).
fn broker_bin() -> Option<String> {
    multiagents_core::conformance::backend_url("KAFKA_BROKER_BIN")
}

/// Accepts TLS on `listener` and relays each connection to `backend`.
fn terminate_tls(listener: TcpListener, dir: &Path, backend: u16) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).expect("server.key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust the certificate ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(("127.0.0.1", backend)).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_with_a_private_ca_carries_messages_and_state() {
    let Some(bin) = broker_bin() else {
        return;
    };
    let dir = std::env::temp_dir().join(unique("multiagents-kafka-tls"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    tls_certificates(&dir);
    let (plain, tls) = (free_port(), free_port());
    let _broker = tokio::process::Command::new(&bin)
        .args(["broker", "--listener-url"])
        .arg(format!("tcp://127.0.0.1:{plain}"))
        .arg("--advertised-listener-url")
        .arg(format!("tcp://127.0.0.1:{tls}"))
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the broker");
    let listener = TcpListener::bind(("127.0.0.1", tls))
        .await
        .expect("bind the TLS port");
    terminate_tls(listener, &dir, plain);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", plain)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the broker never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let ca = dir.join("ca.pem").to_string_lossy().into_owned();
    let url = format!("kafka://127.0.0.1:{tls}?rdkafka.security.protocol=SSL&rdkafka.ssl.ca.location={ca}");
    let config = KafkaConfig::from_url(&url)
        .expect("a TLS URL")
        .with_prefix(unique("tls").replace('.', "_"))
        .with_partitions(2);

    let transport = KafkaTransport::with_config(config.clone())
        .await
        .expect("connect over TLS");
    let mut sub = transport
        .subscribe("secure", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let sent = Envelope::new("secure", "k", &b"over tls"[..]);
    transport.publish(sent.clone()).await.expect("publish");
    let mut d = next(&mut sub, "a message over TLS").await;
    assert_eq!(d.envelope(), &sent);
    d.ack().await.expect("ack");

    let store = KafkaStore::with_config(config.clone())
        .await
        .expect("store over TLS");
    let v = store.put("k", Bytes::from_static(b"v"), None).await.expect("put");
    let got = store.get("k").await.expect("get").expect("present");
    assert_eq!((got.value.as_ref(), got.version), (&b"v"[..], v));
    store.close().await.expect("close the store");
    transport.close().await.expect("close the transport");

    // Without the private CA the broker's certificate is not trusted: a
    // typed, retryable error within the request timeout, not a hang.
    let mut untrusted =
        KafkaConfig::from_url(&format!("kafka://127.0.0.1:{tls}?rdkafka.security.protocol=SSL"))
            .expect("a TLS URL")
            .with_prefix(unique("tlsu").replace('.', "_"));
    untrusted.request_timeout = Duration::from_secs(3);
    let err = KafkaTransport::with_config(untrusted)
        .await
        .expect_err("an untrusted certificate");
    assert!(
        matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{err}"
    );
    assert!(err.is_retryable(), "{err}");
}
