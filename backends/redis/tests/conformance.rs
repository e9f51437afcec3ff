//! The core conformance suite, unchanged, against a real Redis server
//! (`REDIS_URL`, e.g. from `scripts/services.sh up`). Each generated test
//! uses its own key prefix, so tests run in parallel on one server.

use std::time::Duration;

use multiagents_core::conformance::{Settings, backend_url, unique};
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
