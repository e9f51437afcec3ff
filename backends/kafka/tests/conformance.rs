//! The core transport conformance suite, unchanged, against a real
//! Kafka-protocol broker (`KAFKA_URL`, e.g. from `scripts/services.sh up`).
//! Each generated test uses its own prefix (its own topics and groups), so
//! tests run in parallel on one broker.

use std::time::Duration;

use multiagents_core::conformance::{Settings, backend_url, unique};
use multiagents_kafka::{KafkaConfig, KafkaTransport};

fn config(url: &str) -> KafkaConfig {
    KafkaConfig::from_url(url)
        .expect("KAFKA_URL is a kafka:// URL")
        .with_prefix(unique("conf").replace('.', "_"))
        .with_partitions(4)
}

multiagents_core::transport_conformance!(
    kafka_transport,
    async {
        let url = backend_url("KAFKA_URL")?;
        Some(
            KafkaTransport::with_config(config(&url))
                .await
                .expect("connect to Kafka"),
        )
    },
    // Joining a consumer group takes a few seconds (a rebalance), and a
    // consumer's leaving moves its partitions with another.
    Settings::default()
        .with_patience(Duration::from_secs(30))
        .with_redelivery(Duration::from_secs(30))
);
