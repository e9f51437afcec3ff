//! The core conformance suites, unchanged, against a real Kafka-protocol
//! broker (`KAFKA_URL`, e.g. from `scripts/services.sh up`): the transport
//! suite, and the orchestrator suite on Kafka transport + Redis store
//! (`REDIS_URL`; the setup most Kafka users would run, timers kept in the
//! store) and + NATS store (`NATS_URL`; a store without timers, so the
//! orchestrator's timers wait on Kafka's delay topic), and Kafka-only
//! (the Kafka store: timers kept in its changelog). Each generated
//! test uses its own prefix (its own topics, groups and keys), so tests run
//! in parallel on one broker.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use multiagents_core::conformance::orchestrator::Site;
use multiagents_core::conformance::{Settings, backend_url, unique};
use multiagents_core::{StateStore, Transport};
use multiagents_kafka::{KafkaConfig, KafkaStore, KafkaTransport};
use multiagents_nats::{NatsConfig, NatsStore};
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

multiagents_core::store_conformance!(
    kafka_store,
    async {
        let url = backend_url("KAFKA_URL")?;
        Some(
            KafkaStore::with_config(config(&url))
                .await
                .expect("open the Kafka store"),
        )
    },
    // Opening reads the changelog and joins the writers' group (a rebalance).
    Settings::default().with_patience(Duration::from_secs(30))
);

/// The store beside the Kafka transport.
#[derive(Clone)]
enum StoreAt {
    Redis(RedisConfig),
    Nats(NatsConfig),
    /// Kafka-only: the store on the same cluster and prefix.
    Kafka,
}

/// A Kafka prefix and a store prefix: each `connect` opens new clients.
struct KafkaSite {
    kafka: KafkaConfig,
    store: StoreAt,
}

impl KafkaSite {
    fn redis() -> Option<KafkaSite> {
        let kafka = config(&backend_url("KAFKA_URL")?);
        let redis = RedisConfig::new(backend_url("REDIS_URL")?).with_key_prefix(unique("orch"));
        Some(KafkaSite {
            kafka,
            store: StoreAt::Redis(redis),
        })
    }

    fn kafka_only() -> Option<KafkaSite> {
        Some(KafkaSite {
            kafka: config(&backend_url("KAFKA_URL")?),
            store: StoreAt::Kafka,
        })
    }

    fn nats() -> Option<KafkaSite> {
        let kafka = config(&backend_url("KAFKA_URL")?);
        let nats = NatsConfig::new(backend_url("NATS_URL")?).with_prefix(unique("orch").replace('-', "_"));
        Some(KafkaSite {
            kafka,
            store: StoreAt::Nats(nats),
        })
    }
}

#[async_trait]
impl Site for KafkaSite {
    async fn connect(&self) -> (Arc<dyn Transport>, Arc<dyn StateStore>) {
        let transport = KafkaTransport::with_config(self.kafka.clone())
            .await
            .expect("connect to Kafka");
        let store: Arc<dyn StateStore> = match &self.store {
            StoreAt::Redis(c) => Arc::new(
                RedisStore::with_config(c.clone())
                    .await
                    .expect("connect to Redis"),
            ),
            StoreAt::Nats(c) => Arc::new(NatsStore::with_config(c.clone()).await.expect("connect to NATS")),
            StoreAt::Kafka => Arc::new(
                KafkaStore::with_config(self.kafka.clone())
                    .await
                    .expect("open the Kafka store"),
            ),
        };
        (Arc::new(transport), store)
    }

    // Kafka has no per-message ack timeout to set.
    async fn fresh(&self, _ack_timeout: Option<Duration>) -> Box<dyn Site> {
        let site = match self.store {
            StoreAt::Redis(_) => KafkaSite::redis(),
            StoreAt::Nats(_) => KafkaSite::nats(),
            StoreAt::Kafka => KafkaSite::kafka_only(),
        };
        Box::new(site.expect("the backend URLs were set"))
    }
}

multiagents_core::orchestrator_conformance!(kafka_redis_orchestrator, async { KafkaSite::redis() });
multiagents_core::orchestrator_conformance!(kafka_nats_orchestrator, async { KafkaSite::nats() });
multiagents_core::orchestrator_conformance!(kafka_only_orchestrator, async { KafkaSite::kafka_only() });
