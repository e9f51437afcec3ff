//! A Redis server killed (`kill -9`) and restarted under a live transport,
//! subscription and store: operations fail with retryable errors in
//! bounded time while it is down, then everything resumes, and what was
//! acknowledged before the kill (AOF, `appendfsync always`) is still there.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use multiagents_core::conformance::unique;
use multiagents_core::store::Expected;
use multiagents_core::{
    Delivery, Envelope, Error, ErrorKind, StateStore, SubscribeMode, SubscribeOptions, Subscription,
    Transport,
};
use multiagents_redis::{RedisConfig, RedisStore, RedisTransport};

use crate::support::{Server, WAIT, next, pending, raw, server_bin, stream_key, text, url};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";

fn envelope(payload: &str) -> Envelope {
    Envelope::new(TOPIC, "tx-1", payload.as_bytes().to_vec())
}

fn assert_retryable(err: &Error, what: &str) {
    assert!(
        matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{what}: expected unavailable or timeout, got {err}"
    );
    assert!(err.is_retryable(), "{what}: {err}");
}

/// Retries `op` (each try bounded) until it succeeds, tolerating retryable
/// errors, for at most [`WAIT`] in all.
async fn until_ok<T, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = multiagents_core::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, op()).await {
            Ok(Ok(t)) => return t,
            Ok(Err(e)) => assert_retryable(&e, what),
            Err(_) => panic!("{what}: not within {WAIT:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Acks `d`, retrying retryable errors (a failed ack leaves it unsettled).
async fn ack(d: &mut Delivery, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, d.ack()).await {
            Ok(Ok(())) => return,
            Ok(Err(e)) => assert_retryable(&e, what),
            Err(_) => panic!("{what}: not within {WAIT:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next delivery, skipping retryable errors (the subscription reports
/// an outage once).
async fn next_after_outage(sub: &mut Subscription, what: &str) -> Delivery {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, sub.next()).await {
            Ok(Some(Ok(d))) => return d,
            Ok(Some(Err(e))) => assert_retryable(&e, what),
            Ok(None) => panic!("{what}: the subscription ended"),
            Err(_) => panic!("{what}: nothing within {WAIT:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_subscription_and_store_ride_out_a_server_restart() {
    let test = "transport_subscription_and_store_ride_out_a_server_restart";
    if url().is_none() {
        return;
    }
    let Some(bin) = server_bin(test) else { return };
    let mut server = Server::start(
        &bin,
        &["--appendonly", "yes", "--appendfsync", "always", "--save", ""],
        None,
    )
    .await;
    let config = RedisConfig::new(server.url())
        .with_key_prefix(unique("restart"))
        .with_connect_timeout(Duration::from_secs(1))
        .with_response_timeout(Duration::from_secs(2));
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect transport");
    let store = RedisStore::with_config(config.clone())
        .await
        .expect("connect store");

    // Before the kill: a subscription consumes a few messages, then holds
    // one; with max_in_flight 1 it reads nothing more, so the next messages
    // stay unconsumed in the stream.
    let mut sub = transport
        .subscribe(
            TOPIC,
            SubscribeMode::queue(GROUP),
            SubscribeOptions::max_in_flight(1),
        )
        .await
        .expect("subscribe");
    for i in 0..3 {
        transport
            .publish(envelope(&format!("before-{i}")))
            .await
            .expect("publish");
        let mut d = next(&mut sub, "a message before the kill").await;
        assert_eq!(text(&d), format!("before-{i}"));
        d.ack().await.expect("ack");
    }
    transport.publish(envelope("held")).await.expect("publish");
    let mut held = next(&mut sub, "the held message").await;
    assert_eq!(text(&held), "held");
    let unconsumed: Vec<Envelope> = (0..5).map(|i| envelope(&format!("unconsumed-{i}"))).collect();
    transport
        .publish_batch(unconsumed.clone())
        .await
        .expect("publish");
    let v1 = store
        .put("state/k", Bytes::from_static(b"before"), None)
        .await
        .expect("put");
    let mut con = raw(&server.url()).await;
    let stream = stream_key(&config, TOPIC);
    assert_eq!(
        pending(&mut con, &stream, GROUP).await,
        1,
        "only the held message was read"
    );
    drop(con);

    server.kill();

    // While the server is down: retryable errors, in bounded time, again
    // and again (not only the first call that meets the dropped connection).
    for attempt in 0..3 {
        let published = tokio::time::timeout(WAIT, transport.publish(envelope("during")))
            .await
            .unwrap_or_else(|_| panic!("publish {attempt} during the outage did not return within {WAIT:?}"));
        assert_retryable(
            &published.expect_err("the server is down"),
            "publish during the outage",
        );
        let read = tokio::time::timeout(WAIT, store.get("state/k"))
            .await
            .unwrap_or_else(|_| panic!("get {attempt} during the outage did not return within {WAIT:?}"));
        assert_retryable(&read.expect_err("the server is down"), "get during the outage");
    }

    server.restart(None).await;

    // (a) Publishing works again.
    until_ok("publish after the restart", || {
        transport.publish(envelope("after-0"))
    })
    .await;
    for i in 1..3 {
        transport
            .publish(envelope(&format!("after-{i}")))
            .await
            .expect("publish");
    }

    // (c) The store serves again, with what was written before the kill.
    let got = until_ok("get after the restart", || store.get("state/k"))
        .await
        .expect("written before the kill, still there");
    assert_eq!((got.value.as_ref(), got.version), (&b"before"[..], v1));
    let v2 = store
        .put("state/k", Bytes::from_static(b"after"), None)
        .await
        .expect("put");
    assert!(v2 > v1, "versions keep growing: {v2} after {v1}");
    let v3 = store
        .compare_and_swap("state/k", Expected::Version(v2), Bytes::from_static(b"cas"), None)
        .await
        .expect("cas");
    assert!(v3 > v2);

    // (b) The existing subscription resumes: the held message can be
    // acked, then the unconsumed ones and the new ones arrive.
    ack(&mut held, "ack of the held message after the restart").await;
    let mut want: BTreeSet<String> = unconsumed
        .iter()
        .map(|e| String::from_utf8_lossy(&e.payload).into_owned())
        .collect();
    want.extend((0..3).map(|i| format!("after-{i}")));
    let mut got = BTreeSet::new();
    while !want.is_subset(&got) {
        let mut d = next_after_outage(&mut sub, "a message after the restart").await;
        let payload = text(&d);
        assert!(
            want.contains(&payload),
            "unexpected {payload:?} after the restart (before-*, held and during must not come)"
        );
        got.insert(payload);
        ack(&mut d, "ack after the restart").await;
    }
    let mut con = raw(&server.url()).await;
    assert_eq!(pending(&mut con, &stream, GROUP).await, 0, "everything acked");
}
