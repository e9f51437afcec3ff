//! The core conformance suites, unchanged, against a real Kafka-protocol
//! broker (`KAFKA_URL`, e.g. from `scripts/services.sh up`): the transport
//! suite, and the orchestrator suite on Kafka transport + Redis store
//! (`REDIS_URL`; the setup most Kafka users would run). Each generated
//! test uses its own prefix (its own topics, groups and keys), so tests run
//! in parallel on one broker.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use multiagents_core::conformance::orchestrator::Site;
use multiagents_core::conformance::{Settings, backend_url, unique};
use multiagents_core::{StateStore, Transport};
use multiagents_kafka::{KafkaConfig, KafkaTransport};
use multiagents_redis::{RedisConfig, RedisStore};

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

/// A Kafka prefix and a Redis key prefix: each `connect` opens new clients.
struct KafkaRedisSite {
    kafka: KafkaConfig,
    redis: RedisConfig,
}

impl KafkaRedisSite {
    fn open() -> Option<KafkaRedisSite> {
        let kafka = config(&backend_url("KAFKA_URL")?);
        let redis = RedisConfig::new(backend_url("REDIS_URL")?).with_key_prefix(unique("orch"));
        Some(KafkaRedisSite { kafka, redis })
    }
}

#[async_trait]
impl Site for KafkaRedisSite {
    async fn connect(&self) -> (Arc<dyn Transport>, Arc<dyn StateStore>) {
        let transport = KafkaTransport::with_config(self.kafka.clone())
            .await
            .expect("connect to Kafka");
        let store = RedisStore::with_config(self.redis.clone())
            .await
            .expect("connect to Redis");
        (Arc::new(transport), Arc::new(store))
    }

    // Kafka has no per-message ack timeout to set.
    async fn fresh(&self, _ack_timeout: Option<Duration>) -> Box<dyn Site> {
        Box::new(KafkaRedisSite::open().expect("KAFKA_URL and REDIS_URL were set"))
    }
}

multiagents_core::orchestrator_conformance!(kafka_redis_orchestrator, async { KafkaRedisSite::open() });
