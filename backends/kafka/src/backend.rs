//! [`KafkaBackend`]: the `kafka://` scheme in a host's
//! [`Registry`](multiagents_core::registry::Registry).

use std::sync::Arc;

use async_trait::async_trait;
use multiagents_core::registry::Backend;
use multiagents_core::{Error, ErrorKind, Result, StateStore, Transport};

use crate::{KafkaConfig, KafkaTransport};

/// Opens [`KafkaTransport`] from `kafka://` URLs (options in the query,
/// see [`KafkaConfig::from_url`]). It has no state store: `store.url`
/// names Redis or NATS beside it.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaBackend;

#[async_trait]
impl Backend for KafkaBackend {
    fn schemes(&self) -> &'static [&'static str] {
        &["kafka"]
    }

    fn label(&self) -> &'static str {
        "Kafka"
    }

    fn has_store(&self) -> bool {
        false
    }

    fn check(&self, url: &str) -> Result<()> {
        KafkaConfig::from_url(url).map(drop)
    }

    async fn transport(&self, url: &str) -> Result<Arc<dyn Transport>> {
        let config = KafkaConfig::from_url(url)?;
        Ok(Arc::new(KafkaTransport::with_config(config).await?))
    }

    async fn store(&self, url: &str) -> Result<Arc<dyn StateStore>> {
        KafkaConfig::from_url(url)?;
        Err(Error::new(
            ErrorKind::Config,
            "the Kafka backend has no state store yet: set store.url to a redis:// or nats:// URL (the transport can stay on Kafka)",
        )
        .with_operation("kafka.store"))
    }
}
