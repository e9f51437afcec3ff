//! Dead letters: a message whose deliveries end unsettled `max_deliveries`
//! times (dropped, or held past the ack timeout by a consumer that died)
//! moves to `<prefix>:dlq:<topic>`; explicit nacks never count.

use std::time::Duration;

use multiagents_core::conformance::Settings;
use multiagents_core::conformance::transport::struck_out_messages_tell_the_hook_until_it_succeeds;
use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_redis::{DeadLetter, RedisTransport};

use crate::support::{
    config, create_group, eventually, next, nothing_within, pending, raw, stream_key, text, url,
};
use crate::takeover::read_as_dead_consumer;

/// Waits until `topic` has `n` dead letters, and returns them.
async fn dead_letters(transport: &RedisTransport, topic: &str, n: usize) -> Vec<DeadLetter> {
    eventually(&format!("{n} dead letter(s) on {topic}"), move || async move {
        let dead = transport
            .dead_letters(topic, 10)
            .await
            .expect("read dead letters");
        assert!(dead.len() <= n, "more dead letters than expected: {dead:?}");
        (dead.len() == n).then_some(dead)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_dropped_unsettled_max_deliveries_times_is_dead_lettered() {
    let Some(url) = url() else { return };
    let config = config(&url, "dlq-drop").with_max_deliveries(3);
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let (topic, group) = ("orders", "billing");
    let mut sub = transport
        .subscribe(topic, SubscribeMode::queue(group), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let poison = Envelope::new(topic, "tx-poison", &b"poison"[..]).with_header("kind", "poison");
    transport.publish(poison.clone()).await.expect("publish");

    // Three deliveries, each dropped unsettled (like a crashing handler).
    for n in 1..=3 {
        let d = next(&mut sub, "the poison message").await;
        assert_eq!(d.envelope(), &poison);
        assert_eq!(d.delivery_count(), n, "delivery {n}");
        drop(d);
    }

    // Other messages still flow; the poison message never comes again.
    let good = Envelope::new(topic, "tx-good", &b"good"[..]);
    transport.publish(good.clone()).await.expect("publish");
    let mut d = next(&mut sub, "the message after the poison one").await;
    assert_eq!(d.envelope(), &good, "got {:?} instead", text(&d));
    d.ack().await.expect("ack");
    nothing_within(
        &mut sub,
        Duration::from_secs(1),
        "after the poison message was dead-lettered",
    )
    .await;

    let dead = dead_letters(&transport, topic, 1).await;
    let dl = &dead[0];
    assert_eq!(dl.group, group);
    assert_eq!(
        dl.envelope.as_ref(),
        Some(&poison),
        "the decoded envelope is the one sent"
    );
    assert_eq!(dl.deliveries, 3, "it was delivered 3 times: {dl:?}");
    assert!(
        dl.reason.contains("unsettled") && dl.reason.contains('3'),
        "reason: {:?}",
        dl.reason
    );
    assert!(!dl.original_id.is_empty() && !dl.id.is_empty(), "{dl:?}");
    let mut con = raw(&url).await;
    assert_eq!(pending(&mut con, &stream_key(&config, topic), group).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_nacks_do_not_count_towards_dead_lettering() {
    let Some(url) = url() else { return };
    let config = config(&url, "dlq-nack").with_max_deliveries(3);
    let transport = RedisTransport::with_config(config).await.expect("connect");
    let (topic, group) = ("orders", "billing");
    let mut sub = transport
        .subscribe(topic, SubscribeMode::queue(group), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let sent = Envelope::new(topic, "tx-1", &b"retry me"[..]);
    transport.publish(sent.clone()).await.expect("publish");

    for n in 1..=6 {
        let mut d = next(&mut sub, "the nacked message").await;
        assert_eq!(d.envelope(), &sent);
        assert_eq!(d.delivery_count(), n);
        d.nack(Duration::ZERO).await.expect("nack");
    }
    let mut d = next(&mut sub, "the 7th delivery after 6 nacks").await;
    assert_eq!(
        d.envelope(),
        &sent,
        "six nacks with max_deliveries 3 do not dead-letter"
    );
    assert_eq!(d.delivery_count(), 7);
    d.ack().await.expect("ack");
    nothing_within(&mut sub, Duration::from_millis(500), "after the ack").await;
    let dead = transport
        .dead_letters(topic, 10)
        .await
        .expect("read dead letters");
    assert!(dead.is_empty(), "nothing dead-lettered: {dead:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_held_by_a_dead_consumer_past_the_ack_timeout_counts_a_strike() {
    let Some(url) = url() else { return };
    let config = config(&url, "dlq-timeout")
        .with_max_deliveries(1)
        .with_ack_timeout(Duration::from_secs(1));
    let transport = RedisTransport::with_config(config.clone())
        .await
        .expect("connect");
    let (topic, group) = ("orders", "billing");
    let stream = stream_key(&config, topic);
    let mut con = raw(&url).await;
    create_group(&mut con, &stream, group).await;
    let sent = Envelope::new(topic, "tx-1", &b"held by the dead"[..]);
    transport.publish(sent.clone()).await.expect("publish");
    let held = read_as_dead_consumer(&mut con, &stream, group, "dead-consumer", 10).await;
    assert_eq!(held.len(), 1);

    // With max_deliveries 1, the timed-out delivery is the last one: the
    // live consumer gets nothing, the dead-letter stream gets the message.
    let mut sub = transport
        .subscribe(topic, SubscribeMode::queue(group), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let dead = dead_letters(&transport, topic, 1).await;
    let dl = &dead[0];
    assert_eq!(dl.envelope.as_ref(), Some(&sent));
    assert_eq!(dl.group, group);
    assert_eq!(dl.original_id, held[0]);
    assert_eq!(dl.deliveries, 1, "delivered once, to the dead consumer: {dl:?}");
    assert!(dl.reason.contains("timed out"), "reason: {:?}", dl.reason);
    nothing_within(&mut sub, Duration::from_millis(2500), "a dead-lettered message").await;
    assert_eq!(pending(&mut con, &stream, group).await, 0);

    // The group keeps working.
    let later = Envelope::new(topic, "tx-2", &b"later"[..]);
    transport.publish(later.clone()).await.expect("publish");
    let mut d = next(&mut sub, "a message after the dead letter").await;
    assert_eq!(d.envelope(), &later);
    assert_eq!(d.delivery_count(), 1);
    d.ack().await.expect("ack");
}

/// The orchestrator fails a dead-lettered command's attempt from this hook:
/// `claim.lua` leaves the struck-out entry pending, the hook is told, then
/// the entry moves; a failed hook leaves it to be claimed (and told) again.
/// One dead letter is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_tells_the_subscriptions_hook_before_it_moves() {
    let Some(url) = url() else { return };
    let config = config(&url, "dlq-hook")
        .with_max_deliveries(1)
        .with_ack_timeout(Duration::from_secs(1));
    let transport = RedisTransport::with_config(config).await.expect("connect");
    let s = Settings::new().with_redelivery(Duration::from_secs(5));
    let read = |topic: String| {
        let t = &transport;
        async move { t.dead_letters(&topic, 10).await }
    };
    if let Some(letters) = struck_out_messages_tell_the_hook_until_it_succeeds(&transport, &s, read).await {
        assert_eq!(
            letters[0].reason, "dropped unsettled or timed out 2 times",
            "{letters:?}"
        );
    }
}
