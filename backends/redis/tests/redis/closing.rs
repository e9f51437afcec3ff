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

/// `url` on a database that no other test selects (11, or 12 when `url`
/// names 11), so that `CLIENT LIST` tells this test's connections apart
/// (`db=N`); its query and fragment (`#insecure`) are kept.
fn on_a_database_of_its_own(url: &str) -> (String, u32) {
    let (rest, fragment) = url.split_once('#').map_or((url, None), |(r, f)| (r, Some(f)));
    let (base, query) = rest.split_once('?').map_or((rest, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let (base, path) = match base[authority..].find('/') {
        Some(slash) => base.split_at(authority + slash),
        None => (base, ""),
    };
    let db = if path.trim_matches('/') == "11" { 12 } else { 11 };
    let mut out = format!("{base}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    (out, db)
}

#[test]
fn a_database_of_its_own_keeps_the_rest_of_the_url() {
    let cases = [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/11", 11),
        (
            "redis://:pw@h:6379/0?pool_size=1",
            "redis://:pw@h:6379/11?pool_size=1",
            11,
        ),
        ("rediss://h/0#insecure", "rediss://h/11#insecure", 11),
        ("rediss://h#insecure", "rediss://h/11#insecure", 11),
        ("redis://h/11", "redis://h/12", 12),
    ];
    for (url, want, db) in cases {
        assert_eq!(on_a_database_of_its_own(url), (want.to_string(), db), "{url}");
    }
}

/// The server's connections on database `db`.
async fn connections_on(admin: &mut redis::aio::MultiplexedConnection, db: u32) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(admin)
        .await
        .expect("CLIENT LIST");
    let field = format!(" db={db} ");
    list.lines().filter(|l| l.contains(&field)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_closes_every_connection_without_dropping_the_backend() {
    let Some(url) = url() else { return };
    let mut admin = crate::support::raw(&url).await;
    let (url, db) = on_a_database_of_its_own(&url);
    // A long blocking read: close must not wait it out (the reader would
    // then leave its group only after the pool is gone, and fail).
    let config = RedisConfig::new(&url)
        .with_key_prefix(unique("close-conns"))
        .with_pool_size(3)
        .with_block(Duration::from_secs(30));
    let stream = crate::support::stream_key(&config, "t");
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("transport");
    let store = RedisStore::with_config(config).await.expect("store");
    let mut queue = transport
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
    // Taken and settled: the reader's consumer holds nothing (one that
    // held a pending entry would stay in the group, for its claim).
    let mut d = crate::support::next(&mut queue, "the message").await;
    d.ack().await.expect("ack");
    let open = connections_on(&mut admin, db).await;
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
        left = connections_on(&mut admin, db).await;
    }
    assert_eq!(left, 0, "connections still open after close: {}", left);
    let err = store.get("k").await.expect_err("get after close");
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    // The reader left its group before the pool went.
    let mut raw = crate::support::raw(&url).await;
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&stream)
        .arg("g")
        .query_async(&mut raw)
        .await
        .expect("XINFO CONSUMERS");
    assert!(
        consumers.is_empty(),
        "the reader should leave its group on close: {consumers:?}"
    );
    drop((transport, store));
}
