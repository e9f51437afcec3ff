//! Trimming and retention: acknowledged entries are trimmed from streams
//! this process reads (`trim.lua`, approximate `XTRIM MINID`), entries a
//! group still needs never are, and a stream no group reads is capped at
//! `max_retained` (approximate `MAXLEN`), which a group created later then
//! receives.
//!
//! Approximate trimming removes whole macro nodes only, so the bounds below
//! allow one node (`stream-node-max-entries`, read from the server).

use std::time::Duration;

use multiagents_core::{Delivery, Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::RedisTransport;
use redis::aio::MultiplexedConnection;

use crate::support::{config, eventually, next, raw, run, stream_key, text, url, xlen, xrange};

const TOPIC: &str = "events";
const GROUP: &str = "readers";

/// The server's `stream-node-max-entries`: what one macro node holds at most.
async fn node_max_entries(con: &mut MultiplexedConnection) -> usize {
    let reply: Vec<String> = run(
        con,
        redis::cmd("CONFIG").arg("GET").arg("stream-node-max-entries"),
    )
    .await;
    let n: usize = reply
        .get(1)
        .and_then(|v| v.parse().ok())
        .expect("stream-node-max-entries");
    assert!(
        n > 0,
        "these tests assume bounded stream nodes (stream-node-max-entries > 0)"
    );
    n
}

fn batch(n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|i| Envelope::new(TOPIC, format!("tx-{i}"), format!("m-{i}").into_bytes()))
        .collect()
}

fn index(d: &Delivery) -> usize {
    text(d)
        .strip_prefix("m-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected payload {:?}", text(d)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_are_trimmed() {
    let Some(url) = url() else { return };
    let config = config(&url, "trim").with_trim_interval(Duration::from_millis(200));
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let stream = stream_key(&config, TOPIC);
    let mut con = raw(&url).await;
    let node = node_max_entries(&mut con).await;
    let mut sub = transport
        .subscribe(TOPIC, SubscribeMode::queue(GROUP), SubscribeOptions::default())
        .await
        .expect("subscribe");
    transport.publish_batch(batch(500)).await.expect("publish");
    assert_eq!(xlen(&mut con, &stream).await, 500);
    for i in 0..500 {
        let mut d = next(&mut sub, "a published message").await;
        assert_eq!(index(&d), i, "in order");
        d.ack().await.expect("ack");
    }
    let len = eventually("the acknowledged entries are trimmed", || {
        let (mut con, stream) = (con.clone(), stream.clone());
        async move {
            let len = xlen(&mut con, &stream).await;
            (len <= node).then_some(len)
        }
    })
    .await;
    assert!(len < 500, "{len}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_a_group_still_holds_are_never_trimmed() {
    let Some(url) = url() else { return };
    let config = config(&url, "trim-held").with_trim_interval(Duration::from_millis(200));
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let stream = stream_key(&config, TOPIC);
    let mut con = raw(&url).await;
    let node = node_max_entries(&mut con).await;
    let mut sub = transport
        .subscribe(TOPIC, SubscribeMode::queue(GROUP), SubscribeOptions::default())
        .await
        .expect("subscribe");
    transport.publish_batch(batch(500)).await.expect("publish");
    let ids: Vec<String> = xrange(&mut con, &stream)
        .await
        .ids
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), 500);

    // Hold messages 300..310 unsettled, ack the rest.
    let held_range = 300..310;
    let mut held = Vec::new();
    for i in 0..500 {
        let mut d = next(&mut sub, "a published message").await;
        assert_eq!(index(&d), i, "in order");
        if held_range.contains(&i) {
            held.push(d);
        } else {
            d.ack().await.expect("ack");
        }
    }
    // Everything before the oldest held entry may go (up to one node is
    // kept); nothing from it on.
    let len = eventually("the entries before the held ones are trimmed", || {
        let (mut con, stream) = (con.clone(), stream.clone());
        async move {
            let len = xlen(&mut con, &stream).await;
            (len <= 200 + node).then_some(len)
        }
    })
    .await;
    assert!((200..500).contains(&len), "{len}");
    // A few more trim passes, then every held entry is still there.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for i in held_range.clone() {
        let found = run::<redis::streams::StreamRangeReply>(
            &mut con,
            redis::cmd("XRANGE").arg(&stream).arg(&ids[i]).arg(&ids[i]),
        )
        .await;
        assert_eq!(found.ids.len(), 1, "held entry m-{i} ({}) was trimmed", ids[i]);
    }

    // And they are still deliverable.
    for mut d in held {
        d.nack(Duration::ZERO).await.expect("nack");
    }
    let mut again = Vec::new();
    for _ in held_range.clone() {
        let mut d = next(&mut sub, "a held message after its nack").await;
        assert_eq!(d.delivery_count(), 2, "{}", text(&d));
        again.push(index(&d));
        d.ack().await.expect("ack");
    }
    again.sort_unstable();
    assert_eq!(again, held_range.collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_no_group_reads_is_capped_and_a_later_group_gets_the_rest() {
    let Some(url) = url() else { return };
    let config = config(&url, "retain").with_max_retained(100);
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let stream = stream_key(&config, TOPIC);
    let mut con = raw(&url).await;
    let node = node_max_entries(&mut con).await;
    for chunk in batch(2000).chunks(250) {
        transport.publish_batch(chunk.to_vec()).await.expect("publish");
    }
    let len = xlen(&mut con, &stream).await;
    assert!(
        (100..=100 + node).contains(&len),
        "approximately 100 retained, got {len} (node size {node})"
    );

    // A group created now starts at the stream's start: it gets exactly the
    // retained messages, the newest ones, in order.
    let mut sub = transport
        .subscribe(TOPIC, SubscribeMode::queue(GROUP), SubscribeOptions::default())
        .await
        .expect("subscribe");
    for i in (2000 - len)..2000 {
        let mut d = next(&mut sub, "a retained message").await;
        assert_eq!(index(&d), i, "the retained tail, in order");
        d.ack().await.expect("ack");
    }
    crate::support::nothing_within(&mut sub, Duration::from_millis(500), "after the retained ones").await;
}
