//! The core conformance suite, unchanged, against a real nats-server
//! (`NATS_URL`, e.g. from `scripts/services.sh up`). Each generated test
//! uses its own prefix (its own stream and buckets), so tests run in
//! parallel on one server.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use multiagents_core::conformance::orchestrator::Site;
use multiagents_core::conformance::{Settings, backend_url, unique};
use multiagents_core::{StateStore, Transport};
use multiagents_nats::{NatsConfig, NatsStore, NatsTransport};

/// The suite's settings: the ack timeout is 5 s, not the 2 s of the Redis
/// suite. The suite holds deliveries unsettled for a few `quiet` periods
/// and counts a redelivery meanwhile as a duplicate; on a server that
/// fsyncs every write (`sync_interval: always`) a 10 000-message batch
/// keeps the stream busy for about 2 s, and acks queued behind it would
/// arrive after a 2 s ack timeout.
fn config(url: String) -> NatsConfig {
    NatsConfig::new(url)
        .with_prefix(unique("conf").replace('-', "_"))
        .with_ack_timeout(Duration::from_secs(5))
}

multiagents_core::transport_conformance!(
    nats_transport,
    async {
        let url = backend_url("NATS_URL")?;
        Some(
            NatsTransport::with_config(config(url))
                .await
                .expect("connect to NATS"),
        )
    },
    Settings::default().with_redelivery(Duration::from_secs(12))
);

multiagents_core::store_conformance!(
    nats_store,
    async {
        let url = backend_url("NATS_URL")?;
        Some(
            NatsStore::with_config(config(url))
                .await
                .expect("connect to NATS"),
        )
    },
    Settings::default()
);

/// A prefix on the server: each `connect` opens new connections to it.
struct NatsSite {
    config: NatsConfig,
}

impl NatsSite {
    fn open(ack_timeout: Option<Duration>) -> Option<NatsSite> {
        let mut config = NatsConfig::new(backend_url("NATS_URL")?).with_prefix(unique("orch"));
        if let Some(ack) = ack_timeout {
            config = config.with_ack_timeout(ack);
        }
        Some(NatsSite { config })
    }
}

#[async_trait]
impl Site for NatsSite {
    async fn connect(&self) -> (Arc<dyn Transport>, Arc<dyn StateStore>) {
        let transport = NatsTransport::with_config(self.config.clone())
            .await
            .expect("connect to NATS");
        let store = NatsStore::with_config(self.config.clone())
            .await
            .expect("connect to NATS");
        (Arc::new(transport), Arc::new(store))
    }

    async fn fresh(&self, ack_timeout: Option<Duration>) -> Box<dyn Site> {
        Box::new(NatsSite::open(ack_timeout).expect("NATS_URL was set"))
    }
}

multiagents_core::orchestrator_conformance!(nats_orchestrator, async { NatsSite::open(None) });
