//! # multiagents-redis
//!
//! The Redis backend of multiagents: a [`Transport`](multiagents_core::Transport)
//! on Streams consumer groups (queue mode) and Pub/Sub (broadcast mode),
//! and a [`StateStore`](multiagents_core::StateStore) on strings (a version
//! header and the value) with compare-and-swap by Lua script. Both pass the core conformance suite
//! against a real `redis-server` (7.0 or later).
//!
//! ```no_run
//! use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
//! use multiagents_redis::{RedisConfig, RedisTransport};
//!
//! # async fn demo() -> multiagents_core::Result<()> {
//! let transport = RedisTransport::with_config(
//!     RedisConfig::new("redis://127.0.0.1:6379").with_key_prefix("shop"),
//! )
//! .await?;
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
//! | `backend` | [`RedisBackend`]: the `redis://` / `rediss://` schemes for a host's registry |
//! | [`config`] | [`RedisConfig`]: URL, key prefix, stream and delivery tunables; password never shown |
//! | `error` | the one mapping from Redis client errors to core error kinds |
//! | `connection` | connecting with bounded retry; the command pool; blocking-read connections |
//! | `keys` | the key layout under the prefix |
//! | `scripts` (+ `src/lua/`) | the Lua scripts: put, CAS, scan, publish, nack, claim, trim, leave, depth, timers |
//! | `store` | [`RedisStore`] |
//! | `stored` | a state value as kept in Redis (version header, value), read back; hashes of earlier releases |
//! | `timers` | [`RedisScheduler`]: the timers of state keys (a sorted set), claimed with a lease |
//! | `transport` | [`RedisTransport`]: publish, queue subscriptions (reader, acker), broadcast, trimming, queue depth |
//!
//! # Guarantees and limits
//!
//! * Nothing acknowledged is lost while Redis keeps its data: run it with
//!   AOF `appendfsync always` to survive a server crash (`everysec` may
//!   lose the last second).
//! * A single Redis server (or a primary): Redis Cluster is not supported
//!   (the scripts touch keys of several slots).

mod backend;
pub mod config;
mod connection;
mod error;
mod keys;
mod scripts;
mod store;
mod stored;
mod timers;
mod transport;

pub use backend::RedisBackend;
pub use config::{RedisConfig, URL_OPTIONS};
pub use store::RedisStore;
pub use timers::RedisScheduler;
pub use transport::{DeadLetter, RedisTransport};
