//! # multiagents-kafka
//!
//! The Kafka backend of multiagents: a [`Transport`](multiagents_core::Transport)
//! on consumer groups (queue mode) and group-less readers (broadcast mode),
//! and a [`StateStore`](multiagents_core::StateStore) on a compacted
//! changelog with one writer per partition ([`KafkaStore`]), built on
//! librdkafka (bundled, through `rdkafka`; TLS with the crate feature
//! `tls`, which links OpenSSL). It passes the core transport, store and
//! orchestrator conformance suites against a Kafka-protocol broker, except
//! what it declares it lacks: a per-message ack timeout, and stable
//! ownership of held work (a rebalance may hand it to a joining consumer;
//! those parts of two behaviours are visible skips).
//!
//! ```no_run
//! use multiagents_core::{Envelope, SubscribeMode, SubscribeOptions, Transport};
//! use multiagents_kafka::{KafkaConfig, KafkaTransport};
//!
//! # async fn demo() -> multiagents_core::Result<()> {
//! let transport = KafkaTransport::with_config(KafkaConfig::from_url("kafka://127.0.0.1:9092?prefix=shop")?).await?;
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
//! | `backend` | [`KafkaBackend`]: the `kafka://` scheme for a host's registry |
//! | `blocking` | librdkafka's blocking calls (metadata, watermarks), off the async threads |
//! | [`config`] | [`KafkaConfig`]: brokers, prefix, tunables, librdkafka options (secrets never shown) |
//! | `client` | building librdkafka clients with the settings the guarantees rest on |
//! | `closing` | closing group consumers off the async threads, waited for at most 10 s |
//! | `error` | the one mapping from rdkafka errors to core error kinds |
//! | `headers` | record headers, built for a produce and read back |
//! | `names` | every topic, group and header name |
//! | `store` | [`KafkaStore`]: the changelog, the view, partition writers, forwarded writes, timers |
//! | `topics` | creating topics once per process |
//! | `transport` | [`KafkaTransport`]: publish, queue and broadcast subscriptions, nacks, delays, dead letters |
//!
//! # Guarantees and limits
//!
//! * **Commits never pass unsettled work.** Each partition's committed
//!   offset is the lowest offset not yet settled; work is settled out of
//!   order, so a crash redelivers settled work behind an unsettled one
//!   (at least once), never loses unsettled work.
//! * **No per-message ack timeout.** Unsettled work returns when its
//!   partition moves to another consumer: its consumer left, or stopped
//!   heartbeating for `session_timeout`. A rebalance (a consumer joining)
//!   may move a partition while its work is in progress: that work is
//!   delivered again to the new owner (a duplicate, never a loss).
//! * **A nack is a copy.** `nack` and a dropped delivery republish the
//!   message (to its topic, the delay topic, or its dead letters after
//!   `max_deliveries` strikes) and then settle the original. The copy goes
//!   to the key's partition again, behind what was published since: one
//!   key's order holds among first deliveries, not across a nack.
//! * **The store has one writer per partition.** Kafka has no
//!   compare-and-swap: each changelog partition's writer (an instance the
//!   group `<prefix>.state` picks) decides every CAS of its keys, appends,
//!   and answers once it read its record back accepted; other instances
//!   forward their writes to it. Epochs in every record fence a writer
//!   that lost its partition. See [`KafkaStore`].

mod backend;
mod blocking;
mod client;
mod closing;
pub mod config;
mod error;
mod headers;
mod names;
mod producer;
mod store;
mod topics;
mod transport;

pub use backend::KafkaBackend;
pub use config::{FIXED_CLIENT_OPTIONS, KafkaConfig, URL_OPTIONS};
/// The client crate this backend is built on, for raw access to the same
/// cluster (benchmarks, tools).
pub use rdkafka;
pub use store::KafkaStore;
pub use transport::KafkaTransport;
