//! Reaching a shared backend as a client: reading and steering
//! transactions without serving any.
//!
//! `status`, `history`, `list`, `cancel`, `watch` and `submit` (without
//! `--wait`) go through a [`Runtime`], which owns the orchestrator's reads,
//! cancel and events. But a runtime also *serves*: it consumes its workers'
//! commands and the results and timers of every transaction on the backend.
//! A short-lived command must not do that: `status` would run workflow
//! steps (a payment charged by a status query), and a process that exits
//! holding deliveries leaves them to the backend's ack timeout. So these
//! commands build their runtime over a [`ClientTransport`].

use std::sync::Arc;

use multiagents::{
    Capabilities, Config, Envelope, MemoryTransport, Result, Runtime, SubscribeMode, SubscribeOptions,
    Subscription, Transport,
};

/// A runtime on `config`'s backends that serves nothing: see the module docs.
pub(crate) async fn runtime(config: &Config) -> Result<Runtime> {
    let shared = multiagents::backend::transport(&config.transport.url).await?;
    let transport = Arc::new(ClientTransport {
        shared,
        idle: MemoryTransport::new(),
    });
    Runtime::builder_from_config(config)?
        .transport(transport)
        .build()
        .await
}

/// Publishes and broadcast subscriptions (lifecycle events) go to the shared
/// transport; queue subscriptions (commands, results, timers: the work of
/// serving instances) go to a private in-memory transport, where nothing is
/// ever published.
struct ClientTransport {
    shared: Arc<dyn Transport>,
    idle: MemoryTransport,
}

#[async_trait::async_trait]
impl Transport for ClientTransport {
    fn capabilities(&self) -> Capabilities {
        self.shared.capabilities()
    }

    async fn publish(&self, envelope: Envelope) -> Result<()> {
        self.shared.publish(envelope).await
    }

    async fn publish_batch(&self, envelopes: Vec<Envelope>) -> Result<()> {
        self.shared.publish_batch(envelopes).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        mode: SubscribeMode,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        match mode {
            SubscribeMode::Broadcast => self.shared.subscribe(topic, mode, options).await,
            SubscribeMode::Queue { .. } => self.idle.subscribe(topic, mode, options).await,
        }
    }
}
