//! Strikes, not deliveries, send a message to the dead letters: a nack is
//! the consumer's own decision (the orchestrator's timers are nacked until
//! due), a delivery dropped or timed out is a strike. Bytes that are not an
//! envelope are dead-lettered at once.

use std::time::Duration;

use multiagents_core::conformance::Settings;
use multiagents_core::conformance::transport::struck_out_messages_tell_the_hook_until_it_succeeds;
use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_nats::NatsTransport;

use crate::support::{WAIT, config, next, quiet, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacks_are_not_strikes() {
    let Some(url) = url() else { return };
    let t = NatsTransport::with_config(config(&url, "nack").with_max_deliveries(2))
        .await
        .expect("connect");
    let mut sub = t
        .subscribe("jobs", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    t.publish(Envelope::new("jobs", "k", &b"timer"[..]))
        .await
        .expect("publish");
    for count in 1..=5 {
        let mut d = next(&mut sub, "a nacked message").await;
        assert_eq!(d.delivery_count(), count);
        d.nack(Duration::ZERO).await.expect("nack");
    }
    let mut d = next(&mut sub, "the sixth delivery").await;
    assert_eq!(d.delivery_count(), 6, "five nacks and no dead letter");
    d.ack().await.expect("ack");
    quiet(&mut sub, Duration::from_millis(500), "after the ack").await;
    assert!(t.dead_letters("jobs", 10).await.expect("dead letters").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_deliveries_strike_out_to_the_dead_letters() {
    let Some(url) = url() else { return };
    let t = NatsTransport::with_config(config(&url, "strike").with_max_deliveries(2))
        .await
        .expect("connect");
    let mut sub = t
        .subscribe("jobs", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    let sent = Envelope::new("jobs", "k", &b"poison"[..]);
    t.publish(sent.clone()).await.expect("publish");
    // A nack first: not a strike. Then two drops: two strikes.
    next(&mut sub, "delivery 1")
        .await
        .nack(Duration::ZERO)
        .await
        .expect("nack");
    drop(next(&mut sub, "delivery 2").await);
    drop(next(&mut sub, "delivery 3").await);
    quiet(&mut sub, Duration::from_secs(1), "a message with two strikes").await;
    let letters = t.dead_letters("jobs", 10).await.expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(
        (letter.group.as_str(), letter.reason.as_str(), letter.deliveries),
        ("g", "max_deliveries", 4),
        "{letter:?}"
    );
    assert_eq!(letter.envelope.as_ref().map(|e| e.id), Some(sent.id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_an_envelope_go_to_the_dead_letters() {
    let Some(url) = url() else { return };
    let cfg = config(&url, "garbage");
    let t = NatsTransport::with_config(cfg.clone()).await.expect("connect");
    let mut sub = t
        .subscribe("jobs", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    // Something else writes garbage into the topic's subject.
    let raw = async_nats::connect(url.as_str()).await.expect("raw client");
    let js = async_nats::jetstream::new(raw);
    js.publish(format!("{}.q.jobs", cfg.prefix), "not cbor".into())
        .await
        .expect("raw publish")
        .await
        .expect("stored");
    t.publish(Envelope::new("jobs", "k", &b"fine"[..]))
        .await
        .expect("publish");
    let mut d = next(&mut sub, "the good message").await;
    assert_eq!(d.payload(), b"fine", "the garbage is never delivered");
    d.ack().await.expect("ack");
    let end = tokio::time::Instant::now() + WAIT;
    loop {
        let letters = t.dead_letters("jobs", 10).await.expect("dead letters");
        if let Some(letter) = letters.first() {
            assert_eq!(
                (letter.reason.as_str(), letter.envelope.is_none()),
                ("not_an_envelope", true)
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no dead letter within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The chaos run's stuck transactions: a server restart made the nack
/// count unreadable, every earlier nack was counted as a strike, and a
/// healthy command went to the dead letters. An unreadable count is now no
/// strike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_nack_count_is_not_a_strike() {
    let Some(url) = url() else { return };
    let cfg = config(&url, "unread").with_max_deliveries(2);
    let t = NatsTransport::with_config(cfg.clone()).await.expect("connect");
    let mut sub = t
        .subscribe("jobs", SubscribeMode::queue("g"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    t.publish(Envelope::new("jobs", "k", &b"retried"[..]))
        .await
        .expect("publish");
    for count in 1..=2 {
        let mut d = next(&mut sub, "a nacked message").await;
        assert_eq!(d.delivery_count(), count);
        d.nack(Duration::ZERO).await.expect("nack");
    }
    let third = next(&mut sub, "the third delivery").await;
    // The nack counts become unreadable: their bucket's stream is gone.
    let raw = async_nats::connect(url.as_str()).await.expect("raw client");
    let js = async_nats::jetstream::new(raw);
    js.delete_stream(format!("KV_{}_nacks", cfg.prefix))
        .await
        .expect("delete the nacks bucket");
    // One strike (two nacks, then a drop): under the bound of two. Read
    // as no nacks, it would be three strikes: a dead letter.
    drop(third);
    let mut d = next(&mut sub, "the fourth delivery, its nacks unread").await;
    assert_eq!(d.delivery_count(), 4);
    d.ack().await.expect("ack");
    quiet(&mut sub, Duration::from_millis(500), "after the ack").await;
    assert!(t.dead_letters("jobs", 10).await.expect("dead letters").is_empty());
}

/// The orchestrator fails a dead-lettered command's attempt from this hook:
/// it is told after the copy and before the `TERM`, and again (after the
/// ack timeout) when it failed. The copy is kept once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_tells_the_subscriptions_hook_before_its_term() {
    let Some(url) = url() else { return };
    let cfg = config(&url, "hook")
        .with_max_deliveries(1)
        .with_ack_timeout(Duration::from_secs(1));
    let t = NatsTransport::with_config(cfg).await.expect("connect");
    let s = Settings::new().with_redelivery(Duration::from_secs(5));
    let read = |topic: String| {
        let t = &t;
        async move { t.dead_letters(&topic, 10).await }
    };
    struck_out_messages_tell_the_hook_until_it_succeeds(&t, &s, read).await;
}
