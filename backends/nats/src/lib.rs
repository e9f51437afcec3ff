//! # multiagents-nats
//!
//! The NATS backend of multiagents: a [`Transport`](multiagents_core::Transport)
//! on JetStream (queue mode: durable pull consumers) and core NATS
//! (broadcast mode), and a [`StateStore`](multiagents_core::StateStore) on a
//! JetStream KV bucket with compare-and-swap by revision. Both pass the
//! core conformance suite against a real `nats-server` (2.11 or later, with
//! JetStream).
//!
//! ```no_run
//! use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
//! use multiagents_nats::{NatsConfig, NatsTransport};
//!
//! # async fn demo() -> multiagents_core::Result<()> {
//! let transport =
//!     NatsTransport::with_config(NatsConfig::new("nats://127.0.0.1:4222").with_prefix("shop")).await?;
//! let mut sub = transport
//!     .subscribe("orders", SubscribeMode::queue("billing"), SubscribeOptions::default())
//!     .await?;
//! transport.publish(Envelope::new("orders", "tx-1", &b"hello"[..])).await?;
//! let mut delivery = sub.next().await.expect("open")?;
//! delivery.ack().await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! | module | owns |
//! |---|---|
//! | `backend` | [`NatsBackend`]: the `nats://` / `tls://` schemes for a host's registry |
//! | [`config`] | [`NatsConfig`]: URL, credentials (never shown), prefix, delivery tunables |
//! | `connection` | connecting (auth, TLS, timeouts) and checking the server (JetStream, ≥ 2.11) |
//! | `error` | the one mapping from async-nats errors to core error kinds |
//! | `names` | every stream, bucket, consumer and subject name; the key encoding |
//! | `publish` | publishing many messages in acknowledgement windows, never deadlocking the client's in-flight limit |
//! | `store` | [`NatsStore`]: KV get/put/CAS/delete with TTLs, ordered scans |
//! | `transport` | [`NatsTransport`]: publish, queue subscriptions (reader, acker, dead letters), broadcast, trimming, queue depth |
//!
//! # Guarantees and limits
//!
//! * Nothing acknowledged is lost while the server keeps its data: run
//!   JetStream with `sync_interval: always` (fsync before every
//!   acknowledgement) to survive a server crash. The default fsyncs every
//!   2 minutes, and Jepsen's analysis of NATS 2.12.1 found acknowledged
//!   writes lost on crashes with it. `scripts/services.sh` starts the
//!   server that way.
//! * TTLs are whole seconds (rounded up).
//! * No store timers: the orchestrator uses transport nacks for its timers
//!   on this store.

mod backend;
pub mod config;
mod connection;
mod error;
mod names;
mod publish;
mod store;
mod transport;

/// The client crate this backend is built on, for raw access to the same
/// server (benchmarks, tools).
pub use async_nats;
pub use backend::NatsBackend;
pub use config::{Auth, NatsConfig, URL_OPTIONS};
pub use store::{MARKER_TTL, NatsStore};
pub use transport::{DeadLetter, NatsTransport};
