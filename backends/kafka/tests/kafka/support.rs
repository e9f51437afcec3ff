//! Helpers shared by the Kafka tests: the URL, a fresh prefix per test,
//! bounded waits on subscriptions.

use std::time::Duration;

use multiagents_core::conformance::{backend_url, unique};
use multiagents_core::{Delivery, Subscription};
use multiagents_kafka::KafkaConfig;

/// The longest any single wait of these tests lasts before it fails.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// `KAFKA_URL`, or `None` (the test prints a skip and returns).
pub(crate) fn url() -> Option<String> {
    backend_url("KAFKA_URL")
}

/// The defaults for `url` under a prefix no other test uses.
pub(crate) fn config(url: &str, name: &str) -> KafkaConfig {
    KafkaConfig::from_url(url)
        .expect("KAFKA_URL is a kafka:// URL")
        .with_prefix(unique(name).replace('.', "_"))
        .with_partitions(2)
}

/// The next delivery; fails the test on an error, the end of the
/// subscription, or nothing within [`WAIT`].
pub(crate) async fn next(sub: &mut Subscription, what: &str) -> Delivery {
    match tokio::time::timeout(WAIT, sub.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("{what}: the subscription failed: {e}"),
        Ok(None) => panic!("{what}: the subscription ended"),
        Err(_) => panic!("{what}: nothing delivered within {WAIT:?}"),
    }
}

/// Nothing arrives for `quiet`.
pub(crate) async fn quiet(sub: &mut Subscription, quiet: Duration, what: &str) {
    if let Ok(Some(got)) = tokio::time::timeout(quiet, sub.next()).await {
        panic!("{what}: expected nothing for {quiet:?}, got {got:?}");
    }
}
