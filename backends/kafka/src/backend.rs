//! [`KafkaBackend`]: the `kafka://` scheme in a host's
//! [`Registry`](multiagents_core::registry::Registry).

use std::sync::Arc;

use async_trait::async_trait;
use multiagents_core::registry::Backend;
use multiagents_core::{Result, StateStore, Transport};

use crate::{KafkaConfig, KafkaStore, KafkaTransport};

/// Opens [`KafkaTransport`] and [`KafkaStore`] from `kafka://` URLs
/// (options in the query, see [`KafkaConfig::from_url`]).
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
        true
    }

    fn check(&self, url: &str) -> Result<()> {
        KafkaConfig::from_url(url).map(drop)
    }

    async fn transport(&self, url: &str) -> Result<Arc<dyn Transport>> {
        let config = KafkaConfig::from_url(url)?;
        Ok(Arc::new(KafkaTransport::with_config(config).await?))
    }

    async fn store(&self, url: &str) -> Result<Arc<dyn StateStore>> {
        let config = KafkaConfig::from_url(url)?;
        Ok(Arc::new(KafkaStore::with_config(config).await?))
    }

    async fn client_store(&self, url: &str) -> Result<Arc<dyn StateStore>> {
        let config = KafkaConfig::from_url(url)?;
        Ok(Arc::new(KafkaStore::client(config).await?))
    }
}
