//! `queue_depth` beyond the conformance suite: what only Redis has — the
//! delayed set (due vs not yet due), and the group's lag when the server
//! cannot tell it (`XDEL` past the group's position: `depth.lua` counts) or
//! overcounts it (entries trimmed unread after the group has read: bounded
//! by the stream's length).

use std::time::Duration;

use multiagents_core::transport::QueueDepth;
use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::RedisTransport;
use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::support::{config, create_group, eventually, next, raw, run, stream_key, url, xrange};

const TOPIC: &str = "jobs";
const GROUP: &str = "workers";

fn batch(n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|i| Envelope::new(TOPIC, format!("tx-{i}"), format!("m-{i}").into_bytes()))
        .collect()
}

/// Polls `queue_depth` until it answers `want`.
async fn depth_is(transport: &RedisTransport, want: QueueDepth) {
    eventually(&format!("depth {want:?}"), || async move {
        let got = transport
            .queue_depth(TOPIC, GROUP)
            .await
            .expect("queue_depth")
            .expect("the group exists");
        (got == want).then_some(())
    })
    .await;
}

/// The `lag` field of `XINFO GROUPS` for `GROUP` (`Nil` when unknown).
async fn server_lag(con: &mut MultiplexedConnection, stream: &str) -> Value {
    let groups: Vec<Vec<Value>> = run(con, redis::cmd("XINFO").arg("GROUPS").arg(stream)).await;
    let group = groups
        .into_iter()
        .find(|g| g.get(1) == Some(&Value::BulkString(GROUP.as_bytes().to_vec())))
        .expect("the group");
    let at = group
        .iter()
        .position(|v| v == &Value::BulkString(b"lag".to_vec()))
        .expect("a lag field (Redis 7)");
    group[at + 1].clone()
}

/// Delivers one entry of `GROUP` to a consumer that holds it.
async fn read_one(con: &mut MultiplexedConnection, stream: &str) {
    let _: Value = run(
        con,
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("c")
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(stream)
            .arg(">"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacked_entries_are_delayed_until_due_then_ready() {
    let Some(url) = url() else { return };
    let transport = RedisTransport::with_config(config(&url, "depth-nack"))
        .await
        .expect("connect");
    assert_eq!(
        transport.queue_depth(TOPIC, GROUP).await.expect("queue_depth"),
        None,
        "no stream yet"
    );
    let mut sub = transport
        .subscribe(
            TOPIC,
            SubscribeMode::queue(GROUP),
            SubscribeOptions::max_in_flight(3),
        )
        .await
        .expect("subscribe");
    transport.publish_batch(batch(5)).await.expect("publish");
    let mut now = next(&mut sub, "delivery 1").await;
    let mut later = next(&mut sub, "delivery 2").await;
    let mut kept = next(&mut sub, "delivery 3").await;
    depth_is(&transport, QueueDepth::new(2, 3, 0)).await;
    // Nobody claims what is handed back from now on.
    drop(sub);
    now.nack(Duration::ZERO).await.expect("nack now");
    later.nack(Duration::from_secs(600)).await.expect("nack later");
    depth_is(&transport, QueueDepth::new(3, 1, 1)).await;
    kept.ack().await.expect("ack");
    depth_is(&transport, QueueDepth::new(3, 0, 1)).await;
    assert_eq!(
        transport.queue_depth(TOPIC, "others").await.expect("queue_depth"),
        None,
        "a group that never subscribed"
    );
    transport.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_lag_is_counted() {
    let Some(url) = url() else { return };
    let config = config(&url, "depth-xdel");
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let stream = stream_key(&config, TOPIC);
    let mut con = raw(&url).await;
    create_group(&mut con, &stream, GROUP).await;
    // More than one page of the script's count.
    transport.publish_batch(batch(2500)).await.expect("publish");
    read_one(&mut con, &stream).await;
    assert_eq!(server_lag(&mut con, &stream).await, Value::Int(2499));
    let last = xrange(&mut con, &stream)
        .await
        .ids
        .last()
        .expect("entries")
        .id
        .clone();
    let _: usize = run(&mut con, redis::cmd("XDEL").arg(&stream).arg(&last)).await;
    assert_eq!(
        server_lag(&mut con, &stream).await,
        Value::Nil,
        "the server cannot tell"
    );
    let depth = transport.queue_depth(TOPIC, GROUP).await.expect("queue_depth");
    assert_eq!(depth, Some(QueueDepth::new(2498, 1, 0)));
    transport.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_trimmed_unread_are_not_counted() {
    let Some(url) = url() else { return };
    let config = config(&url, "depth-trim");
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let stream = stream_key(&config, TOPIC);
    let mut con = raw(&url).await;
    create_group(&mut con, &stream, GROUP).await;
    transport.publish_batch(batch(10)).await.expect("publish");
    // Once the group has read, the server counts from its read counter.
    read_one(&mut con, &stream).await;
    let _: usize = run(&mut con, redis::cmd("XTRIM").arg(&stream).arg("MAXLEN").arg(2)).await;
    assert_eq!(
        server_lag(&mut con, &stream).await,
        Value::Int(9),
        "the server's overcount"
    );
    let depth = transport.queue_depth(TOPIC, GROUP).await.expect("queue_depth");
    assert_eq!(depth, Some(QueueDepth::new(2, 1, 0)));
    transport.close().await.expect("close");
}
