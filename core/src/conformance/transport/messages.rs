//! What arrives, where, how often and in which order.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;

use super::{assert_same_envelope, number, numbered, queue_sub};
use crate::conformance::util::{
    assert_bytes_eq, bounded, expect_quiet, expect_quiet_any, left, merge, must, pattern, recv, recv_any,
    require, try_recv_any,
};
use crate::conformance::{Settings, skip, unique};
use crate::envelope::{Envelope, EnvelopeId};
use crate::transport::Transport;

/// Publishes `sent` to a fresh queue group and checks it arrives unchanged
/// with delivery count 1, and that nothing follows its ack.
async fn round_trip<T: Transport + ?Sized>(t: &T, s: &Settings, sent: Envelope) {
    let group = unique("g");
    let mut sub = queue_sub(t, s, &sent.topic, &group, 16).await;
    must(s, "publish", t.publish(sent.clone())).await;
    let mut d = recv(&mut sub, s.patience, "the published envelope").await;
    assert_same_envelope(d.envelope(), &sent);
    assert_eq!(
        d.delivery_count(),
        1,
        "first delivery should have delivery_count 1"
    );
    assert!(!d.is_settled(), "a fresh delivery should be unsettled");
    must(s, "ack", d.ack()).await;
    assert!(d.is_settled(), "an acked delivery should be settled");
    expect_quiet(&mut sub, s.quiet, "after the only message was acked").await;
}

/// Every envelope field survives the trip: binary payload with `0x00` and
/// `0xff`, a key with spaces and non-ASCII, two headers in order, attempt 3.
pub async fn queue_round_trip<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "queue_round_trip", queue);
    let sent = Envelope::new(
        unique("rt"),
        "tx:01J/ü *",
        vec![0x00, 0xff, 0x00, b'a', 0x7f, 0x80, 0xff, 0x00],
    )
    .with_header(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .with_header("content-type", "application/cbor")
    .with_attempt(3);
    round_trip(t, s, sent).await;
}

/// An empty payload arrives as an empty payload.
pub async fn empty_payload_round_trip<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "empty_payload_round_trip", queue);
    round_trip(t, s, Envelope::new(unique("empty"), "k", Bytes::new())).await;
}

/// A 1 MiB payload arrives intact (skipped when `max_payload` is smaller).
pub async fn large_payload_round_trip<T: Transport + ?Sized>(t: &T, s: &Settings) {
    let caps = t.capabilities();
    require!(caps, "large_payload_round_trip", queue);
    if caps.max_payload < 1 << 20 {
        skip("large_payload_round_trip", caps.name, "max_payload >= 1 MiB");
        return;
    }
    round_trip(t, s, Envelope::new(unique("large"), "k", pattern(1 << 20))).await;
}

/// A lone consumer sees each key's messages in publish order: three keys
/// interleaved, 20 each by `publish`, then 20 each in one `publish_batch`.
pub async fn per_key_order<T: Transport + ?Sized>(t: &T, s: &Settings) {
    let caps = t.capabilities();
    require!(caps, "per_key_order", queue, ordered_per_key);
    let topic = unique("order");
    let mut sub = queue_sub(t, s, &topic, &unique("g"), 256).await;
    let envs = numbered(&topic, 120, 3);
    for e in &envs[..60] {
        must(s, "publish", t.publish(e.clone())).await;
    }
    must(s, "publish_batch", t.publish_batch(envs[60..].to_vec())).await;
    let mut next: HashMap<String, u32> = HashMap::new();
    for _ in 0..envs.len() {
        let mut d = recv(&mut sub, s.patience, "the next message in order").await;
        let (key, n) = (d.envelope().key.clone(), number(d.payload()));
        let want = next.entry(key.clone()).or_insert(n % 3);
        assert_eq!(
            n,
            *want,
            "key {key:?}: expected message #{want} next, got #{n} (delivery_count {})",
            d.delivery_count()
        );
        *want += 3;
        must(s, "ack", d.ack()).await;
    }
    expect_quiet(&mut sub, s.quiet, "after all 120 messages were acked").await;
}

/// Receives `n` distinct messages from `sub`, acking each, and checks there
/// are no duplicates and nothing more.
async fn drain_group(sub: &mut crate::Subscription, s: &Settings, sent: &HashSet<EnvelopeId>, what: &str) {
    let mut seen = HashSet::new();
    while seen.len() < sent.len() {
        let mut d = recv(
            sub,
            s.patience,
            format_args!("{what}: message {}", seen.len() + 1),
        )
        .await;
        let id = d.envelope().id;
        assert!(
            sent.contains(&id),
            "{what}: received a message that was not sent: {:?}",
            d.envelope()
        );
        assert!(
            seen.insert(id),
            "{what}: received {id} twice though every delivery was acked"
        );
        must(s, "ack", d.ack()).await;
    }
    expect_quiet(sub, s.quiet, format_args!("{what}: after every message arrived")).await;
}

/// Two groups on one topic each receive every message, once.
pub async fn groups_each_receive_every_message<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "groups_each_receive_every_message", queue);
    let topic = unique("groups");
    let mut a = queue_sub(t, s, &topic, &unique("ga"), 256).await;
    let mut b = queue_sub(t, s, &topic, &unique("gb"), 256).await;
    let envs = numbered(&topic, 20, 4);
    let sent: HashSet<_> = envs.iter().map(|e| e.id).collect();
    must(s, "publish_batch", t.publish_batch(envs)).await;
    drain_group(&mut a, s, &sent, "group a").await;
    drain_group(&mut b, s, &sent, "group b").await;
}

/// One group name used on `t`, `t.sub` and `t-x`: each subscription gets
/// only the messages of its own topic (no prefix or wildcard leaks).
pub async fn topics_are_isolated<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "topics_are_isolated", queue);
    let base = unique("iso");
    let group = unique("g");
    let topics = [base.clone(), format!("{base}.sub"), format!("{base}-x")];
    let mut subs = Vec::new();
    for topic in &topics {
        subs.push(queue_sub(t, s, topic, &group, 16).await);
    }
    for topic in topics.iter().rev() {
        must(
            s,
            "publish",
            t.publish(Envelope::new(topic, "k", topic.clone().into_bytes())),
        )
        .await;
    }
    for (topic, sub) in topics.iter().zip(&mut subs) {
        let mut d = recv(sub, s.patience, format_args!("the message on {topic:?}")).await;
        assert_eq!(
            &d.envelope().topic,
            topic,
            "subscription to {topic:?} got another topic's message"
        );
        assert_bytes_eq(d.payload(), topic.as_bytes(), "payload");
        must(s, "ack", d.ack()).await;
        expect_quiet(
            sub,
            s.quiet,
            format_args!("subscription to {topic:?} after its one message"),
        )
        .await;
    }
}

/// Three consumers of one group (`max_in_flight` 10 each) and 60 messages
/// with distinct keys: while up to 30 are held unacked every consumer has
/// some (the work is split), and after acking, every message has arrived
/// exactly once.
///
/// A backend that [moves work on join](crate::Capabilities::moves_work_on_join)
/// may still be rebalancing when the messages come (a member's revoke can
/// land after the newcomer's first assignment), so held work may move to
/// another consumer and arrive there again: such a duplicate is allowed
/// only when each of its deliveries went to a different consumer (a move),
/// never twice to the same one.
pub async fn competing_consumers_share_work<T: Transport + ?Sized>(t: &T, s: &Settings) {
    let caps = t.capabilities();
    require!(caps, "competing_consumers_share_work", queue);
    let (topic, group) = (unique("compete"), unique("g"));
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(queue_sub(t, s, &topic, &group, 10).await);
    }
    let mut merged = merge(subs);
    // Distinct keys: backends that route by key (Kafka partitions) spread them.
    let envs = numbered(&topic, 60, 60);
    let sent: HashSet<_> = envs.iter().map(|e| e.id).collect();
    must(s, "publish_batch", t.publish_batch(envs)).await;

    // Per message, the consumers it was delivered to, in order.
    let mut count: HashMap<EnvelopeId, Vec<usize>> = HashMap::new();
    let mut per_consumer = [0usize; 3];
    let mut held = Vec::new();
    // Hold deliveries unacked until 30 are held, or until every consumer has
    // some and nothing more comes within `quiet`, or `patience` ends.
    let deadline = Instant::now() + s.patience;
    while held.len() < 30 {
        let limit = if per_consumer.iter().all(|&n| n > 0) {
            s.quiet
        } else {
            left(deadline)
        };
        let Some((i, d)) = try_recv_any(&mut merged, limit, "holding deliveries unacked").await else {
            break;
        };
        count.entry(d.envelope().id).or_default().push(i);
        per_consumer[i] += 1;
        held.push(d);
    }
    assert!(!held.is_empty(), "no message arrived within {:?}", s.patience);
    assert!(
        per_consumer.iter().all(|&n| n > 0),
        "the work was not split: unacked deliveries held per consumer = {per_consumer:?} (max_in_flight 10 each)"
    );
    for mut d in held {
        must(s, "ack", d.ack()).await;
    }
    while count.len() < sent.len() {
        let (i, mut d) = recv_any(
            &mut merged,
            s.patience,
            format_args!("message {}", count.len() + 1),
        )
        .await;
        count.entry(d.envelope().id).or_default().push(i);
        must(s, "ack", d.ack()).await;
    }
    if caps.moves_work_on_join {
        // Copies of held work that moved may still come; nothing else.
        while let Some((i, mut d)) = try_recv_any(&mut merged, s.quiet, "a late duplicate").await {
            count.entry(d.envelope().id).or_default().push(i);
            must(s, "ack", d.ack()).await;
        }
    } else {
        expect_quiet_any(&mut merged, s.quiet, "after every message was acked").await;
    }
    let twice_to_one = |to: &Vec<usize>| to.iter().collect::<HashSet<_>>().len() < to.len();
    let dups: Vec<_> = count
        .iter()
        .filter(|(_, to)| to.len() > 1 && (!caps.moves_work_on_join || twice_to_one(to)))
        .collect();
    assert!(
        dups.is_empty(),
        "messages delivered more than once though all were acked (id, consumers it went to): {dups:?}"
    );
    let moved = count.values().filter(|to| to.len() > 1).count();
    if moved > 0 {
        crate::conformance::skip(
            "competing_consumers_share_work (every message once)",
            caps.name,
            &format!(
                "stable ownership of held work ({moved} held messages moved to another consumer in a rebalance)"
            ),
        );
    }
    assert!(
        count.keys().all(|id| sent.contains(id)),
        "received messages that were not sent"
    );
}

/// A 10 000-envelope `publish_batch`, consumed with `next_batch` while it is
/// published, arrives exactly once per envelope when every delivery is acked.
pub async fn batch_of_10k_arrives_exactly_once<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "batch_of_10k_arrives_exactly_once", queue);
    const N: u32 = 10_000;
    let topic = unique("bulk");
    let mut sub = queue_sub(t, s, &topic, &unique("g"), 256).await;
    let envs = numbered(&topic, N, 16);
    let sent: HashSet<_> = envs.iter().map(|e| e.id).collect();
    let publish = async { must(s, "publish_batch of 10 000", t.publish_batch(envs)).await };
    let consume = async {
        let mut seen = HashSet::new();
        while seen.len() < N as usize {
            let batch = match bounded(s.patience, "next_batch", sub.next_batch(512)).await {
                Some(Ok(batch)) => batch,
                Some(Err(e)) => panic!("next_batch failed after {} messages: {e}", seen.len()),
                None => panic!("the subscription ended after {} messages", seen.len()),
            };
            for mut d in batch {
                let id = d.envelope().id;
                assert!(
                    sent.contains(&id),
                    "received a message that was not sent: {:?}",
                    d.envelope()
                );
                assert!(
                    seen.insert(id),
                    "{id} arrived twice though it was acked (after {} messages)",
                    seen.len()
                );
                must(s, "ack", d.ack()).await;
            }
        }
    };
    tokio::join!(publish, consume);
    expect_quiet(&mut sub, s.quiet, "after all 10 000 messages were acked").await;
}
