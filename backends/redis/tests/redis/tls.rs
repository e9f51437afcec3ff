//! `rediss://` (crate feature `tls`) against a real TLS redis-server of the
//! test's own, with a private CA made by `openssl` for the test.

use bytes::Bytes;
use multiagents_core::{Envelope, ErrorKind, StateStore, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::{RedisConfig, RedisStore, RedisTransport};

use crate::support::{Server, free_port, next, server_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_private_ca_carries_messages_and_state() {
    let Some(bin) = server_bin("rediss_with_a_private_ca_carries_messages_and_state") else {
        return;
    };
    let dir = std::env::temp_dir().join(multiagents_core::conformance::unique("multiagents-tls"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    multiagents_core::conformance::tls_certificates(&dir);
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let tls_port = free_port().to_string();
    let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    let _server = Server::start(
        &bin,
        &[
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        None,
    )
    .await;
    let url = format!("rediss://127.0.0.1:{tls_port}?tls_ca_file={ca}&connect_attempts=1");
    let config = RedisConfig::from_url(&url).expect("valid URL");

    let transport = RedisTransport::with_config(config.clone())
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

    let store = RedisStore::with_config(config).await.expect("store over TLS");
    let v = store.put("k", Bytes::from_static(b"v"), None).await.expect("put");
    let got = store.get("k").await.expect("get").expect("present");
    assert_eq!((got.value.as_ref(), got.version), (&b"v"[..], v));

    // Without the private CA the server's certificate is not trusted: a
    // typed error, not a hang, not a panic.
    let untrusted = RedisConfig::from_url(&format!("rediss://127.0.0.1:{tls_port}?connect_attempts=1"))
        .expect("valid URL");
    let err = RedisStore::with_config(untrusted)
        .await
        .expect_err("an untrusted certificate");
    assert_ne!(err.kind(), ErrorKind::Config, "{err}");

    // A CA file that does not exist is a configuration error naming it.
    let missing = RedisConfig::from_url(&format!(
        "rediss://127.0.0.1:{tls_port}?tls_ca_file=/nonexistent/ca.pem&connect_attempts=1"
    ))
    .expect("valid URL");
    let err = RedisStore::with_config(missing)
        .await
        .expect_err("a missing CA file");
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.message().contains("/nonexistent/ca.pem"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
