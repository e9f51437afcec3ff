//! `close()`: open subscriptions end, background tasks stop, and every
//! later call (by any clone) is a typed `Closed` error.

use std::time::Duration;

use bytes::Bytes;
use multiagents_core::conformance::unique;
use multiagents_core::{Envelope, ErrorKind, StateStore, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::{RedisConfig, RedisStore, RedisTransport};

use crate::support::url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_ends_subscriptions_and_refuses_later_calls() {
    let Some(url) = url() else { return };
    let config = RedisConfig::new(&url).with_key_prefix(unique("close"));
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("transport");
    let store = RedisStore::with_config(config).await.expect("store");
    let clone = transport.clone();
    let mut queue = transport
        .subscribe("t", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("queue");
    let mut broadcast = transport
        .subscribe("t", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect("broadcast");

    transport.close().await.expect("close");
    transport.close().await.expect("close twice is a no-op");
    for (what, sub) in [("queue", &mut queue), ("broadcast", &mut broadcast)] {
        let end = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
        assert!(
            matches!(end, Ok(None)),
            "a {what} subscription should end after close"
        );
    }
    let err = clone
        .publish(Envelope::new("t", "k", &b"x"[..]))
        .await
        .expect_err("publish after close");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    let err = clone
        .subscribe("t", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect_err("subscribe after close");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");

    store
        .put("k", Bytes::from_static(b"v"), None)
        .await
        .expect("put before close");
    store.close().await.expect("close store");
    let err = store.get("k").await.expect_err("get after close");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    assert!(err.to_string().contains("closed"), "{err}");
}
