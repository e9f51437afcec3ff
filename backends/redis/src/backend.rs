//! [`RedisBackend`]: the `redis://` / `rediss://` schemes in a host's
//! [`Registry`](multiagents_core::registry::Registry).

use std::sync::Arc;

use async_trait::async_trait;
use multiagents_core::registry::Backend;
use multiagents_core::{Result, StateStore, Transport};

use crate::{RedisConfig, RedisStore, RedisTransport};

/// Opens [`RedisTransport`] and [`RedisStore`] from `redis://` and
/// `rediss://` URLs (options in the query, see [`RedisConfig::from_url`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisBackend;

#[async_trait]
impl Backend for RedisBackend {
    fn schemes(&self) -> &'static [&'static str] {
        &["redis", "rediss"]
    }

    fn label(&self) -> &'static str {
        "Redis"
    }

    fn check(&self, url: &str) -> Result<()> {
        RedisConfig::from_url(url).map(drop)
    }

    async fn transport(&self, url: &str) -> Result<Arc<dyn Transport>> {
        let config = RedisConfig::from_url(url)?;
        Ok(Arc::new(RedisTransport::with_config(config).await?))
    }

    async fn store(&self, url: &str) -> Result<Arc<dyn StateStore>> {
        let config = RedisConfig::from_url(url)?;
        Ok(Arc::new(RedisStore::with_config(config).await?))
    }
}
