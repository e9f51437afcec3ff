//! Broadcast: fan-out to every listener, `broadcast()` reaching listeners
//! only, and a large `broadcast()` packed or not arriving whole and in order.

use std::collections::HashSet;

use super::{assert_same_envelope, numbered};
use crate::conformance::util::{expect_quiet, must, recv, require};
use crate::conformance::{Settings, unique};
use crate::envelope::Envelope;
use crate::transport::{SubscribeMode, SubscribeOptions, Transport};

/// Three broadcast subscribers each receive every message published after
/// they subscribed, exactly once.
pub async fn broadcast_fan_out<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(t.capabilities(), "broadcast_fan_out", broadcast);
    let topic = unique("fanout");
    let mut subs = Vec::new();
    for _ in 0..3 {
        let sub = t.subscribe(&topic, SubscribeMode::Broadcast, SubscribeOptions::default());
        subs.push(must(s, "broadcast subscribe", sub).await);
    }
    let envs = numbered(&topic, 10, 2);
    for e in &envs {
        must(s, "publish", t.publish(e.clone())).await;
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        let mut seen = HashSet::new();
        for _ in 0..envs.len() {
            let mut d = recv(
                sub,
                s.patience,
                format_args!("subscriber {i}: message {}", seen.len() + 1),
            )
            .await;
            let id = d.envelope().id;
            assert!(
                envs.iter().any(|e| e.id == id),
                "subscriber {i}: unexpected {:?}",
                d.envelope()
            );
            assert!(seen.insert(id), "subscriber {i}: received {id} twice");
            must(s, "ack of a broadcast delivery", d.ack()).await;
        }
        expect_quiet(
            sub,
            s.quiet,
            format_args!("subscriber {i}: after all 10 messages"),
        )
        .await;
    }
}

/// `broadcast` of 3 messages: a broadcast subscriber gets them in order; a
/// queue group subscribed before, and one subscribing after, get nothing.
pub async fn broadcast_only_reaches_broadcast_subscribers<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(
        t.capabilities(),
        "broadcast_only_reaches_broadcast_subscribers",
        queue,
        broadcast,
        broadcast_only
    );
    let topic = unique("bonly");
    let mut queue = must(
        s,
        "queue subscribe",
        t.subscribe(
            &topic,
            SubscribeMode::queue(unique("g")),
            SubscribeOptions::default(),
        ),
    )
    .await;
    let sub = t.subscribe(&topic, SubscribeMode::Broadcast, SubscribeOptions::default());
    let mut listener = must(s, "broadcast subscribe", sub).await;
    let envs = numbered(&topic, 3, 2);
    must(s, "broadcast", t.broadcast(envs.clone())).await;
    for (i, sent) in envs.iter().enumerate() {
        let d = recv(
            &mut listener,
            s.patience,
            format_args!("broadcast message {}", i + 1),
        )
        .await;
        assert_eq!(
            d.envelope(),
            sent,
            "broadcast message {} out of order or altered",
            i + 1
        );
    }
    expect_quiet(&mut queue, s.quiet, "a queue group after broadcast()").await;
    let late = t.subscribe(
        &topic,
        SubscribeMode::queue(unique("late")),
        SubscribeOptions::default(),
    );
    let mut late = must(s, "late queue subscribe", late).await;
    expect_quiet(
        &mut late,
        s.quiet,
        "a queue group subscribing after broadcast() (nothing retained)",
    )
    .await;
    must(s, "empty broadcast", t.broadcast(Vec::new())).await;
}

/// One `broadcast` of ~1 MiB of 1 KiB envelopes in runs of two topics
/// (600 on one, 1 on the other, 300, 5, 1): each topic's subscriber gets
/// exactly its envelopes, whole and in order, however the transport packs
/// them into messages. (901 envelopes on one subscription: broadcast
/// subscribers of some transports buffer 1 024 before they drop; keep the
/// counts under that.)
pub async fn broadcast_batch_keeps_each_topics_order<T: Transport + ?Sized>(t: &T, s: &Settings) {
    require!(
        t.capabilities(),
        "broadcast_batch_keeps_each_topics_order",
        broadcast,
        broadcast_only
    );
    let (a, b) = (unique("bbatch-a"), unique("bbatch-b"));
    let on_a = t.subscribe(&a, SubscribeMode::Broadcast, SubscribeOptions::default());
    let mut on_a = must(s, "broadcast subscribe", on_a).await;
    let on_b = t.subscribe(&b, SubscribeMode::Broadcast, SubscribeOptions::default());
    let mut on_b = must(s, "broadcast subscribe", on_b).await;
    let env = |topic: &str, i: u32| {
        let mut payload = vec![(i % 251) as u8; 1024];
        payload[..4].copy_from_slice(&i.to_be_bytes());
        Envelope::new(topic, format!("k{}", i % 7), payload)
    };
    let runs = [(&a, 600), (&b, 1), (&a, 300), (&b, 5), (&a, 1)];
    let mut sent = Vec::new();
    for (topic, n) in runs {
        let start = sent.len() as u32;
        sent.extend((start..start + n).map(|i| env(topic, i)));
    }
    must(s, "broadcast", t.broadcast(sent.clone())).await;
    for (topic, sub) in [(&a, &mut on_a), (&b, &mut on_b)] {
        let mine: Vec<&Envelope> = sent.iter().filter(|e| &e.topic == topic).collect();
        for (i, want) in mine.iter().enumerate() {
            let d = recv(
                sub,
                s.patience,
                format_args!("{topic}: broadcast message {} of {}", i + 1, mine.len()),
            )
            .await;
            assert_same_envelope(d.envelope(), want);
        }
        expect_quiet(
            sub,
            s.quiet,
            format_args!("{topic}: after its {} messages", mine.len()),
        )
        .await;
    }
}
