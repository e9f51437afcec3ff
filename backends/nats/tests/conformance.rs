//! The core conformance suite, unchanged, against a real nats-server
//! (`NATS_URL`, e.g. from `scripts/services.sh up`). Each generated test
//! uses its own prefix (its own stream and buckets), so tests run in
//! parallel on one server.

use std::time::Duration;

use multiagents_core::conformance::{Settings, backend_url, unique};
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
