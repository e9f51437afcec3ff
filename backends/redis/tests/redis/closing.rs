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

/// `url` on database 11, which no other test selects, so that `CLIENT
/// LIST` tells this test's connections apart (`db=11`).
fn on_database_11(url: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, ""), |(b, q)| (b, q));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    if query.is_empty() {
        format!("{base}/11")
    } else {
        format!("{base}/11?{query}")
    }
}

/// The server's connections on database 11.
async fn connections_on_11(admin: &mut redis::aio::MultiplexedConnection) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .expect("CLIENT LIST");
    list.lines().filter(|l| l.contains(" db=11 ")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_closes_every_connection_without_dropping_the_backend() {
    let Some(url) = url() else { return };
    let mut admin = crate::support::raw(&url).await;
    let url = on_database_11(&url);
    let config = RedisConfig::new(&url)
        .with_key_prefix(unique("close-conns"))
        .with_pool_size(3);
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("transport");
    let store = RedisStore::with_config(config).await.expect("store");
    let _queue = transport
        .subscribe("t", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("queue");
    let _broadcast = transport
        .subscribe("t", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect("broadcast");
    transport
        .publish(Envelope::new("t", "k", &b"x"[..]))
        .await
        .expect("publish");
    store.put("k", Bytes::from_static(b"v"), None).await.expect("put");
    let open = connections_on_11(&mut admin).await;
    assert!(
        open >= 6,
        "two pools of 3 (and the readers) are open before close: {open}"
    );

    transport.close().await.expect("close transport");
    store.close().await.expect("close store");
    // The backends are still alive (held here); their connections are not.
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    let mut left = open;
    while left > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = connections_on_11(&mut admin).await;
    }
    assert_eq!(left, 0, "connections still open after close: {}", left);
    let err = store.get("k").await.expect_err("get after close");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    drop((transport, store));
}
