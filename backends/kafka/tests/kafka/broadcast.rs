//! A `broadcast` call's envelopes of one topic go as one packed record
//! (one record on the broker instead of one each), and subscribers unpack
//! it.

use std::time::Duration;

use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
use multiagents_kafka::KafkaTransport;
use multiagents_kafka::rdkafka::consumer::{BaseConsumer, Consumer};

use super::support::{config, next, quiet};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_of_200_envelopes_is_one_record() {
    let Some(url) = super::support::url() else { return };
    let cfg = config(&url, "packed");
    let t = KafkaTransport::with_config(cfg.clone()).await.expect("connect");
    let mut sub = t
        .subscribe("events", SubscribeMode::Broadcast, SubscribeOptions::default())
        .await
        .expect("subscribe");
    let sent: Vec<Envelope> = (0..200u32)
        .map(|i| Envelope::new("events", format!("tx{i}"), i.to_be_bytes().to_vec()))
        .collect();
    t.broadcast(sent.clone()).await.expect("broadcast");
    for (i, want) in sent.iter().enumerate() {
        let d = next(&mut sub, &format!("event {} of 200", i + 1)).await;
        assert_eq!(d.envelope(), want, "event {} altered or out of order", i + 1);
    }
    quiet(&mut sub, Duration::from_millis(500), "after the 200 events").await;
    // What the broker holds: one record on the broadcast topic.
    let topic = format!("{}.b.events", cfg.prefix);
    let raw: BaseConsumer = multiagents_kafka::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .create()
        .expect("raw consumer");
    let (low, high) =
        tokio::task::spawn_blocking(move || raw.fetch_watermarks(&topic, 0, Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("watermarks");
    assert_eq!(
        high - low,
        1,
        "200 envelopes of one broadcast call should be one record"
    );
    t.close().await.expect("close");
}
