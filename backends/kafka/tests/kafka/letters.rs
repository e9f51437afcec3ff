//! Dead letters: strikes (deliveries dropped unsettled) up to
//! `max_deliveries` move a message to its topic's dead letters; nacks are
//! not strikes; a record that is not an envelope goes there at once.

use std::time::Duration;

use multiagents_core::conformance::Settings;
use multiagents_core::conformance::transport::struck_out_messages_tell_the_hook_until_it_succeeds;
use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_kafka::KafkaTransport;
use multiagents_kafka::rdkafka::producer::{FutureProducer, FutureRecord};

use super::support::{config, next, quiet, url};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strikes_bury_a_message_and_nacks_do_not_count() {
    let Some(url) = url() else { return };
    let t = KafkaTransport::with_config(config(&url, "strikes").with_max_deliveries(2))
        .await
        .expect("connect");
    let mut sub = t
        .subscribe("jobs", SubscribeMode::queue("w"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    // Nacked three times (more than max_deliveries), then acked: nacks are
    // not strikes, and the count goes up each time.
    let kept = Envelope::new("jobs", "a", &b"kept"[..]);
    t.publish(kept.clone()).await.expect("publish");
    for n in 1..=3 {
        let mut d = next(&mut sub, "a nacked message").await;
        assert_eq!((d.envelope().id, d.delivery_count()), (kept.id, n));
        d.nack(Duration::ZERO).await.expect("nack");
    }
    let mut d = next(&mut sub, "the message after three nacks").await;
    assert_eq!((d.envelope().id, d.delivery_count()), (kept.id, 4));
    d.ack().await.expect("ack");

    // Dropped unsettled twice: the second strike buries it.
    let doomed = Envelope::new("jobs", "b", &b"doomed"[..]);
    t.publish(doomed.clone()).await.expect("publish");
    drop(next(&mut sub, "first delivery").await);
    let second = next(&mut sub, "after one strike").await;
    assert_eq!((second.envelope().id, second.delivery_count()), (doomed.id, 2));
    drop(second);
    quiet(&mut sub, Duration::from_secs(2), "a message that struck out").await;
    let letters = t.dead_letters("jobs", 10).await.expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.reason, "max_deliveries");
    assert_eq!(letter.group, "w");
    assert_eq!(letter.deliveries, 2);
    assert!(letter.original_id.contains(".q.jobs/"), "{}", letter.original_id);
    assert_eq!(letter.envelope.as_ref(), Some(&doomed));
    assert!(t.dead_letters("other", 10).await.expect("none").is_empty());
    t.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_an_envelope_is_dead_lettered_and_the_queue_goes_on() {
    let Some(url) = url() else { return };
    let cfg = config(&url, "garbage");
    let t = KafkaTransport::with_config(cfg.clone()).await.expect("connect");
    let mut sub = t
        .subscribe("jobs", SubscribeMode::queue("w"), SubscribeOptions::default())
        .await
        .expect("subscribe");
    // Something else writes junk to the topic.
    let producer: FutureProducer = multiagents_kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .expect("raw producer");
    let topic = format!("{}.q.jobs", cfg.prefix);
    producer
        .send(
            FutureRecord::to(&topic).key("k").payload(&b"not an envelope"[..]),
            Duration::from_secs(10),
        )
        .await
        .expect("raw send");
    let good = Envelope::new("jobs", "k", &b"good"[..]);
    t.publish(good.clone()).await.expect("publish");
    let mut d = next(&mut sub, "the good message behind the junk").await;
    assert_eq!(d.envelope(), &good);
    d.ack().await.expect("ack");
    // The junk is dead-lettered beside the delivery of what follows it, not
    // before: wait (boundedly) for its copy to show on the dead-letter topic.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let letters = t.dead_letters("jobs", 10).await.expect("dead letters");
        if !letters.is_empty() || std::time::Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].reason, "not_an_envelope");
    assert!(letters[0].envelope.is_none());
    t.close().await.expect("close");
}

/// The orchestrator fails a dead-lettered command's attempt from this hook:
/// it is told before the dead letter replaces the original, and again
/// after it failed. One dead letter is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_tells_the_subscriptions_hook_first() {
    let Some(url) = url() else { return };
    let t = KafkaTransport::with_config(config(&url, "hook").with_max_deliveries(1))
        .await
        .expect("connect");
    let s = Settings::new().with_redelivery(Duration::from_secs(20));
    let read = |topic: String| {
        let t = &t;
        async move { t.dead_letters(&topic, 10).await }
    };
    struck_out_messages_tell_the_hook_until_it_succeeds(&t, &s, read).await;
    t.close().await.expect("close");
}
