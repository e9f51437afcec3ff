//! `close()`: later calls fail `Closed`, subscriptions end.

use std::time::Duration;

use multiagents_core::{Envelope, ErrorKind, SubscribeMode, SubscribeOptions, Transport};
use multiagents_nats::NatsTransport;

use crate::support::{config, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_close_calls_fail_closed_and_subscriptions_end() {
    let Some(url) = url() else { return };
    let t = NatsTransport::with_config(config(&url, "close"))
        .await
        .expect("connect");
    let mut queue = t
        .subscribe("jobs", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut broadcast = t
        .subscribe("jobs", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect("subscribe");
    t.close().await.expect("close");
    t.close().await.expect("a second close is a no-op");
    let err = t
        .publish(Envelope::new("jobs", "k", &b"late"[..]))
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    for (name, sub) in [("queue", &mut queue), ("broadcast", &mut broadcast)] {
        let end = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
        assert!(
            matches!(end, Ok(None)),
            "{name} subscription after close: {end:?}"
        );
    }
}
