//! Takeover of a dead consumer's work after the ack timeout (`claim.lua`:
//! `XPENDING … IDLE` + `XCLAIM`, consumer by consumer). The dead consumer
//! is a raw `XREADGROUP` on a connection of the test's own that never acks.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use multiagents_core::{Envelope, EnvelopeId, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::RedisTransport;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;

use crate::support::{
    WAIT, config, create_group, next, nothing_within, pending, raw, run, stream_key, text, url,
};

/// Reads up to `count` new entries as consumer `consumer` of `group`, and
/// returns their ids: that consumer then holds them (it never acks).
pub(crate) async fn read_as_dead_consumer(
    con: &mut MultiplexedConnection,
    stream: &str,
    group: &str,
    consumer: &str,
    count: usize,
) -> Vec<String> {
    let reply: StreamReadReply = run(
        con,
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(stream)
            .arg(">"),
    )
    .await;
    reply
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|id| id.id)
        .collect()
}

fn envelopes(topic: &str, n: usize) -> Vec<Envelope> {
    (0..n)
        .map(|i| Envelope::new(topic, format!("tx-{i}"), format!("job-{i}").into_bytes()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_consumers_messages_are_taken_over_once_each_after_the_ack_timeout() {
    let Some(url) = url() else { return };
    let config = config(&url, "takeover").with_ack_timeout(Duration::from_secs(1));
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let (topic, group) = ("jobs", "workers");
    let stream = stream_key(&config, topic);
    let mut con = raw(&url).await;
    create_group(&mut con, &stream, group).await;

    let sent = envelopes(topic, 5);
    transport.publish_batch(sent.clone()).await.expect("publish");
    let held = read_as_dead_consumer(&mut con, &stream, group, "dead-consumer", 10).await;
    assert_eq!(held.len(), 5, "the dead consumer holds every message");
    assert_eq!(pending(&mut con, &stream, group).await, 5);

    // A live consumer of the same group gets each of them once the dead
    // consumer has held them past the ack timeout.
    let mut sub = transport
        .subscribe(topic, SubscribeMode::queue(group), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let mut got: HashMap<EnvelopeId, Envelope> = HashMap::new();
    for _ in 0..sent.len() {
        let mut d = next(&mut sub, "a taken-over message").await;
        assert_eq!(
            d.delivery_count(),
            2,
            "read once by the dead consumer, then taken over: {}",
            text(&d)
        );
        let previous = got.insert(d.envelope().id, d.envelope().clone());
        assert!(previous.is_none(), "{} was delivered twice", text(&d));
        d.ack().await.expect("ack");
    }
    let expected: HashMap<EnvelopeId, Envelope> = sent.into_iter().map(|e| (e.id, e)).collect();
    assert_eq!(got, expected, "every message, unchanged");

    // Nothing comes again (the acks stick), and nothing is left pending.
    nothing_within(
        &mut sub,
        Duration::from_millis(2500),
        "after acking every taken-over message",
    )
    .await;
    assert_eq!(
        pending(&mut con, &stream, group).await,
        0,
        "XPENDING after the acks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_consumers_split_a_dead_consumers_work_without_duplicates() {
    let Some(url) = url() else { return };
    let config = config(&url, "takeover2").with_ack_timeout(Duration::from_secs(1));
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let (topic, group) = ("jobs", "workers");
    let stream = stream_key(&config, topic);
    let mut con = raw(&url).await;
    create_group(&mut con, &stream, group).await;

    let sent = envelopes(topic, 40);
    transport.publish_batch(sent.clone()).await.expect("publish");
    // Two dead consumers: the live ones go through both.
    let mut held = read_as_dead_consumer(&mut con, &stream, group, "dead-1", 25).await;
    held.extend(read_as_dead_consumer(&mut con, &stream, group, "dead-2", 25).await);
    assert_eq!(held.len(), 40);

    // Small in-flight bounds, so a single claim cannot take everything.
    let options = SubscribeOptions::max_in_flight(4);
    let a = transport
        .subscribe(topic, SubscribeMode::queue(group), options.clone())
        .await
        .expect("subscribe a");
    let b = transport
        .subscribe(topic, SubscribeMode::queue(group), options)
        .await
        .expect("subscribe b");
    let mut both = futures_util::stream::select(a, b);
    let mut seen = HashSet::new();
    while seen.len() < sent.len() {
        let item = tokio::time::timeout(WAIT, both.next()).await;
        let mut d = match item {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => panic!("subscription failed: {e}"),
            Ok(None) => panic!("a subscription ended"),
            Err(_) => panic!("only {} of {} taken over within {WAIT:?}", seen.len(), sent.len()),
        };
        assert_eq!(d.delivery_count(), 2, "{}", text(&d));
        assert!(seen.insert(text(&d)), "{} was delivered twice", text(&d));
        d.ack().await.expect("ack");
    }
    let want: HashSet<String> = (0..40).map(|i| format!("job-{i}")).collect();
    assert_eq!(seen, want);
    let extra = tokio::time::timeout(Duration::from_millis(2500), both.next()).await;
    if let Ok(Some(Ok(d))) = &extra {
        panic!("{} came again after it was acked", text(d));
    }
    assert!(
        extra.is_err(),
        "nothing more: {:?}",
        extra.map(|o| o.map(|r| r.map(|d| text(&d))))
    );
    assert_eq!(pending(&mut con, &stream, group).await, 0);
}
