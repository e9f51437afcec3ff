//! The errors a user meets first: nothing listening, a server without
//! JetStream, a bad URL option. Each is typed and names what to do.

use std::time::{Duration, Instant};

use multiagents_core::ErrorKind;
use multiagents_nats::{NatsConfig, NatsStore, NatsTransport};

use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_unavailable_within_the_connect_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let started = Instant::now();
    let err = NatsTransport::connect(&format!("nats://127.0.0.1:{port}"))
        .await
        .expect_err("nothing listens");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_jetstream_is_named_as_such() {
    let Some(server) = Server::start(&[]) else { return };
    let err = NatsStore::connect(&server.url()).await.expect_err("no JetStream");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("-js"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_permission_denied_and_never_shown() {
    let Some(server) = Server::start(&["--user", "app", "--pass", "right"]) else {
        return;
    };
    let url = format!("nats://app:wrong-secret@127.0.0.1:{}", server.port);
    let err = NatsTransport::with_config(NatsConfig::new(url))
        .await
        .expect_err("wrong password");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(!format!("{err} {err:?}").contains("wrong-secret"), "{err:?}");
}
