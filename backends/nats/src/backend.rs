//! [`NatsBackend`]: the `nats://` / `tls://` schemes in a host's
//! [`Registry`](multiagents_core::registry::Registry).

use std::sync::Arc;

use async_trait::async_trait;
use multiagents_core::registry::Backend;
use multiagents_core::{Result, StateStore, Transport};

use crate::{NatsConfig, NatsStore, NatsTransport};

/// Opens [`NatsTransport`] and [`NatsStore`] from `nats://` and `tls://`
/// URLs (options in the query, see [`NatsConfig::from_url`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsBackend;

#[async_trait]
impl Backend for NatsBackend {
    fn schemes(&self) -> &'static [&'static str] {
        &["nats", "tls"]
    }

    fn label(&self) -> &'static str {
        "NATS"
    }

    fn check(&self, url: &str) -> Result<()> {
        NatsConfig::from_url(url).map(drop)
    }

    async fn transport(&self, url: &str) -> Result<Arc<dyn Transport>> {
        let config = NatsConfig::from_url(url)?;
        Ok(Arc::new(NatsTransport::with_config(config).await?))
    }

    async fn store(&self, url: &str) -> Result<Arc<dyn StateStore>> {
        let config = NatsConfig::from_url(url)?;
        Ok(Arc::new(NatsStore::with_config(config).await?))
    }
}
