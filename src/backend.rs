//! The backends this build of `multiagents` opens, by URL scheme.
//!
//! | scheme | transport | store | in this build |
//! |---|---|---|---|
//! | `memory://` | in-process queues | in-process map | always (per process: nothing is shared across processes) |
//! | `redis://`, `rediss://` | Redis Streams + Pub/Sub | Redis hashes | with the cargo feature `redis` (`rediss://` also needs `redis-tls`); options in the URL's query, e.g. `redis://127.0.0.1:6379/0?key_prefix=shop&ack_timeout=10s` |
//! | `nats://`, `tls://` | JetStream + core NATS | JetStream KV | with the cargo feature `nats` |
//! | `kafka://` | Kafka consumer groups + delay and dead-letter topics | a compacted changelog, one writer per partition (or a `redis://` or `nats://` store beside it) | with the cargo feature `kafka` (TLS: `kafka-tls`); options in the URL's query, e.g. `kafka://b1:9092,b2:9092?prefix=shop&rdkafka.security.protocol=SASL_PLAINTEXT` |
//!
//! A transport and a store may use different backends. The mapping itself
//! is core's [`Registry`]; this file only lists what is compiled in: one
//! `backend!` line per backend crate.

use std::sync::{Arc, LazyLock};

pub use multiagents_core::registry::{Backend, MEMORY_URL, Registry};
use multiagents_core::{Result, StateStore, Transport};

/// Adds `$backend` when cargo feature `$feature` is on; otherwise names
/// `$schemes` as needing that feature.
macro_rules! backend {
    ($registry:ident, $feature:literal, $schemes:expr, $backend:expr) => {
        #[cfg(feature = $feature)]
        {
            $registry = $registry.with($backend);
        }
        #[cfg(not(feature = $feature))]
        {
            $registry = $registry.absent(&$schemes, $feature);
        }
    };
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry::new();
    backend!(
        registry,
        "redis",
        ["redis", "rediss"],
        multiagents_redis::RedisBackend
    );
    backend!(registry, "nats", ["nats", "tls"], multiagents_nats::NatsBackend);
    backend!(registry, "kafka", ["kafka"], multiagents_kafka::KafkaBackend);
    registry
});

/// The registry of this build: memory, plus every backend compiled in.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

/// Opens the transport named by `url` (the `transport.url` setting).
///
/// # Errors
/// `Config` for a bad URL or a backend not compiled in (naming the cargo
/// feature); a backend's connection error.
pub async fn transport(url: &str) -> Result<Arc<dyn Transport>> {
    registry().transport(url).await
}

/// Opens the state store named by `url` (the `store.url` setting).
///
/// # Errors
/// As [`transport`].
pub async fn store(url: &str) -> Result<Arc<dyn StateStore>> {
    registry().store(url).await
}

/// Opens the state store named by `url` for a client, which runs no work
/// (see [`Backend::client_store`](multiagents_core::registry::Backend::client_store)).
///
/// # Errors
/// As [`transport`].
pub async fn client_store(url: &str) -> Result<Arc<dyn StateStore>> {
    registry().client_store(url).await
}

#[cfg(test)]
mod tests {
    use multiagents_core::ErrorKind;

    use super::*;

    #[test]
    fn schemes() {
        assert!(registry().check("transport", "memory://").is_ok());
        let redis = registry().check("transport", "redis://localhost:6379");
        if cfg!(feature = "redis") {
            assert!(redis.is_ok(), "{redis:?}");
        } else {
            let err = redis.expect_err("not built");
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(
                err.message().contains("built without the `redis` feature"),
                "{err}"
            );
        }
        let nats = registry().check("transport", "nats://localhost:4222?prefix=x");
        if cfg!(feature = "nats") {
            assert!(nats.is_ok(), "{nats:?}");
        } else {
            let err = nats.expect_err("not built");
            assert!(err.message().contains("`nats` feature"), "{err}");
        }
        let kafka = registry().check("store", "kafka://localhost:9092");
        if cfg!(feature = "kafka") {
            assert!(kafka.is_ok(), "{kafka:?}");
            let transport = registry().check("transport", "kafka://localhost:9092?prefix=x");
            assert!(transport.is_ok(), "{transport:?}");
        } else {
            let err = kafka.expect_err("not built");
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(err.message().contains("`kafka` feature"), "{err}");
        }
        let err = registry().check("store", "mongo://x").expect_err("unknown");
        assert!(
            err.message().contains("store.url") && err.message().contains("unknown scheme"),
            "{err}"
        );
        assert!(registry().check("store", "memory").is_err());
    }
}
