//! The backend conformance suite against the in-memory backends, each
//! through its concrete type and through `Arc<dyn …>`:
//! [`MemoryTransport`], [`MemoryStore`], and [`CachedStore`] over a
//! `MemoryStore` in write-through and in write-behind mode.
//!
//! Run: `cargo test -p multiagents-core --features conformance --test conformance`.

use std::sync::Arc;
use std::time::Duration;

use multiagents_core::conformance::Settings;
use multiagents_core::{
    CacheConfig, CachedStore, MemoryStore, MemoryTransport, MemoryTransportConfig, StateStore, Transport,
    WriteMode,
};

/// The memory transport with a short ack timeout, so the ack-timeout
/// behaviour finishes well within the default `redelivery` bound.
fn transport() -> MemoryTransport {
    MemoryTransport::with_config(MemoryTransportConfig::default().with_ack_timeout(Duration::from_secs(2)))
}

fn cached(mode: WriteMode) -> CachedStore<MemoryStore> {
    CachedStore::new(MemoryStore::new(), CacheConfig::default().with_write_mode(mode))
        .expect("a cached store over the memory store")
}

multiagents_core::transport_conformance!(memory_transport, async { Some(transport()) }, Settings::default());
multiagents_core::transport_conformance!(
    memory_transport_dyn,
    async { Some(Arc::new(transport()) as Arc<dyn Transport>) },
    Settings::default()
);

multiagents_core::store_conformance!(
    memory_store,
    async { Some(MemoryStore::new()) },
    Settings::default()
);
multiagents_core::store_conformance!(
    memory_store_dyn,
    async { Some(Arc::new(MemoryStore::new()) as Arc<dyn StateStore>) },
    Settings::default()
);

multiagents_core::store_conformance!(
    cached_write_through,
    async { Some(cached(WriteMode::WriteThrough)) },
    Settings::default()
);
multiagents_core::store_conformance!(
    cached_write_through_dyn,
    async { Some(Arc::new(cached(WriteMode::WriteThrough)) as Arc<dyn StateStore>) },
    Settings::default()
);
multiagents_core::store_conformance!(
    cached_write_behind,
    async { Some(cached(WriteMode::write_behind())) },
    Settings::default()
);
multiagents_core::store_conformance!(
    cached_write_behind_dyn,
    async { Some(Arc::new(cached(WriteMode::write_behind())) as Arc<dyn StateStore>) },
    Settings::default()
);

multiagents_core::orchestrator_conformance!(memory_orchestrator, async {
    Some(multiagents_core::conformance::orchestrator::MemorySite::new(None))
});
