//! What the Kafka harnesses (`kafka.rs`, `kafka_store.rs`) share: the
//! broker from `KAFKA_URL`, fresh names, topics made for the raw baseline,
//! medians.

use std::time::Duration;

use multiagents::kafka::rdkafka::ClientConfig;
use multiagents::kafka::rdkafka::admin::{AdminClient, NewTopic, TopicReplication};

/// `KAFKA_URL`, or the local broker.
pub(crate) fn url() -> String {
    std::env::var("KAFKA_URL").unwrap_or_else(|_| "kafka://127.0.0.1:9092".into())
}

/// The brokers of [`url`], as librdkafka's `bootstrap.servers`.
pub(crate) fn brokers() -> String {
    url()
        .trim_start_matches("kafka://")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `name` with a fresh suffix (topics, groups, prefixes of one run).
pub(crate) fn fresh(name: &str) -> String {
    format!(
        "{name}-{}",
        &multiagents::EnvelopeId::new().as_uuid().simple().to_string()[..12]
    )
}

/// Makes `topic` with `partitions` (the raw baselines' topics).
pub(crate) async fn create_topic(topic: &str, partitions: i32) {
    let admin: AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    admin
        .create_topics([&new], &Default::default())
        .await
        .expect("create topic");
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
