//! The core orchestrator suite (`multiagents_core::conformance::orchestrator`)
//! on the mixed sites: in-memory transport + Redis store, NATS + Redis,
//! Redis + NATS (see `backends.rs`). The pure backends stamp it in their
//! own crates (`core/tests/conformance.rs`, `backends/*/tests/conformance.rs`).

#[allow(unused_imports)] // the stamps exist with their features only
use async_trait::async_trait;
#[allow(unused_imports)]
use multiagents_core::conformance::orchestrator as suite;

#[allow(unused_imports)]
use crate::backends::{Backend, Site};

#[async_trait]
impl suite::Site for Site {
    async fn connect(
        &self,
    ) -> (
        std::sync::Arc<dyn multiagents::Transport>,
        std::sync::Arc<dyn multiagents::StateStore>,
    ) {
        Site::connect(self).await
    }

    async fn fresh(&self, ack_timeout: Option<std::time::Duration>) -> Box<dyn suite::Site> {
        let fresh = Site::fresh(self);
        Box::new(match ack_timeout {
            Some(ack) => fresh.with_ack_timeout(ack),
            None => fresh,
        })
    }
}

#[cfg(feature = "redis")]
multiagents_core::orchestrator_conformance!(mixed, async {
    Site::open(Backend::Mixed, "orchestrator::mixed")
});
#[cfg(all(feature = "nats", feature = "redis"))]
multiagents_core::orchestrator_conformance!(nats_redis, async {
    Site::open(Backend::NatsRedis, "orchestrator::nats_redis")
});
#[cfg(all(feature = "nats", feature = "redis"))]
multiagents_core::orchestrator_conformance!(redis_nats, async {
    Site::open(Backend::RedisNats, "orchestrator::redis_nats")
});
