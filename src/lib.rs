//! # multiagents
//!
//! Durable multi-step workflows (sagas) whose steps are workers compiled to
//! WebAssembly, over a pluggable backend: in-memory (the embedded default),
//! Redis, NATS or Kafka.
//!
//! This crate is the one users depend on. Today it re-exports the core
//! contracts and the in-memory backends of [`multiagents_core`]; the runtime,
//! its configuration and the CLI build on them (see the repository README for
//! what is available and what is planned).
//!
//! ```
//! use multiagents::{CacheConfig, CachedStore, MemoryStore, StateStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> multiagents::Result<()> {
//! let store = CachedStore::new(MemoryStore::new(), CacheConfig::default())?;
//! let v1 = store.put("saga:tx-1", "running".into(), None).await?;
//! let got = store.get("saga:tx-1").await?.expect("present");
//! assert_eq!((got.value.as_ref(), got.version), (&b"running"[..], v1));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use multiagents_core::*;
