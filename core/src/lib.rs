//! # multiagents-core
//!
//! The contracts every part of multiagents plugs into, and their embedded
//! in-memory implementations. Backend crates (`multiagents-redis`,
//! `multiagents-nats`, `multiagents-kafka`) depend on this crate only and
//! prove themselves with the same [`conformance`] suite as the in-memory
//! backends.
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | [`error`] | [`Error`] / [`ErrorKind`]: the one error type (kind, retryable, operation, context, source) |
//! | [`validate`] | the naming rules for topics, groups, keys; TTL and size checks |
//! | [`envelope`] | [`Envelope`]: the message on every transport, and its wire form |
//! | [`codec`] | [`PayloadCodec`]: CBOR/JSON payloads, LZ4 above a threshold, size limits |
//! | [`transport`] | the [`Transport`] trait, [`Delivery`], [`Subscription`]; [`MemoryTransport`] |
//! | [`kit`] | helpers every backend crate shares: the request [`Batcher`](kit::Batcher), URL options |
//! | [`orchestrator`] | the saga engine: commands/results/timers over the transport, CAS state, compensation, cancel, events |
//! | [`profile`] | the bottleneck profiler: timings by component and operation, a ranked report with recommendations |
//! | [`registry`] | [`Registry`](registry::Registry): backends by URL scheme; the [`Backend`](registry::Backend) trait a backend crate implements |
//! | [`resilience`] | circuit breaker, concurrency limit with bounded queue, call stats: the [`resilience::Guard`] around worker calls |
//! | [`scheduler`] | the [`Scheduler`](scheduler::Scheduler) contract: durable timers, one per store key, armed with the state write |
//! | [`store`] | the [`StateStore`] trait; [`MemoryStore`]; [`CachedStore`] (moka) |
//! | [`trace`] | W3C `traceparent` propagation: one trace per transaction across instances; the exporter hook |
//! | [`worker`] | the [`Worker`](worker::Worker) trait, [`WorkerHost`](worker::WorkerHost), native workers, the WebAssembly host (feature `wasm`) |
//! | [`workflow`] | workflow definitions: steps, compensations, CEL conditions, retry policies |
//! | `conformance` | (feature `conformance`) the behaviour suite every backend must pass |
//!
//! # Example
//!
//! ```
//! use multiagents_core::{Envelope, MemoryTransport, SubscribeMode, SubscribeOptions, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> multiagents_core::Result<()> {
//! let transport = MemoryTransport::new();
//! let mut sub = transport
//!     .subscribe("orders", SubscribeMode::queue("billing"), SubscribeOptions::default())
//!     .await?;
//! transport.publish(Envelope::new("orders", "tx-1", &b"hello"[..])).await?;
//! let mut delivery = sub.next().await.expect("open")?;
//! assert_eq!(delivery.payload(), b"hello");
//! delivery.ack().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod codec;
pub mod envelope;
pub mod error;
pub mod kit;
pub mod orchestrator;
pub mod profile;
pub mod registry;
pub mod resilience;
pub mod scheduler;
pub mod store;
pub mod trace;
pub mod transport;
pub mod validate;
pub mod worker;
pub mod workflow;

#[cfg(feature = "conformance")]
pub mod conformance;

#[cfg(test)]
mod bad_input_props;

pub use codec::{Format, PayloadCodec};
pub use envelope::{Envelope, EnvelopeId};
pub use error::{Error, ErrorKind, Result};
pub use store::{
    CacheConfig, CacheStats, CachedStore, Expected, MemoryStore, MemoryStoreConfig, PutEntry, ScanPage,
    StateStore, StoreCapabilities, Version, Versioned, WriteMode,
};
pub use transport::{
    Acker, Capabilities, Delivery, MemoryTransport, MemoryTransportConfig, QueueDepth, SubscribeMode,
    SubscribeOptions, Subscription, Transport,
};
