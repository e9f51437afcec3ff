//! The core conformance suite, unchanged, against a real Redis server
//! (`REDIS_URL`, e.g. from `scripts/services.sh up`). Each generated test
//! uses its own key prefix, so tests run in parallel on one server.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use multiagents_core::conformance::orchestrator::Site;
use multiagents_core::conformance::{Settings, backend_url, unique};
use multiagents_core::{StateStore, Transport};
use multiagents_redis::{RedisConfig, RedisStore, RedisTransport};

/// The suite's settings: the ack timeout is 2 s (the suite holds
/// deliveries unsettled for a few `quiet` periods and counts any
/// redelivery meanwhile as a duplicate), so redelivery takes up to
/// 2 s + a timeout pass (≤ 500 ms) + a read block.
fn config(url: String) -> RedisConfig {
    RedisConfig::new(url)
        .with_key_prefix(unique("conf"))
        .with_ack_timeout(Duration::from_secs(2))
}

multiagents_core::transport_conformance!(
    redis_transport,
    async {
        let url = backend_url("REDIS_URL")?;
        Some(
            RedisTransport::with_config(config(url))
                .await
                .expect("connect to Redis"),
        )
    },
    Settings::default().with_redelivery(Duration::from_secs(6))
);

multiagents_core::store_conformance!(
    redis_store,
    async {
        let url = backend_url("REDIS_URL")?;
        Some(
            RedisStore::with_config(config(url))
                .await
                .expect("connect to Redis"),
        )
    },
    Settings::default()
);

/// A key prefix on the server: each `connect` opens new connections to it.
struct RedisSite {
    config: RedisConfig,
}

impl RedisSite {
    fn open(ack_timeout: Option<Duration>) -> Option<RedisSite> {
        let mut config = RedisConfig::new(backend_url("REDIS_URL")?).with_key_prefix(unique("orch"));
        if let Some(ack) = ack_timeout {
            config = config.with_ack_timeout(ack);
        }
        Some(RedisSite { config })
    }
}

#[async_trait]
impl Site for RedisSite {
    async fn connect(&self) -> (Arc<dyn Transport>, Arc<dyn StateStore>) {
        let transport = RedisTransport::with_config(self.config.clone())
            .await
            .expect("connect to Redis");
        let store = RedisStore::with_config(self.config.clone())
            .await
            .expect("connect to Redis");
        (Arc::new(transport), Arc::new(store))
    }

    async fn fresh(&self, ack_timeout: Option<Duration>) -> Box<dyn Site> {
        Box::new(RedisSite::open(ack_timeout).expect("REDIS_URL was set"))
    }
}

multiagents_core::orchestrator_conformance!(redis_orchestrator, async { RedisSite::open(None) });
