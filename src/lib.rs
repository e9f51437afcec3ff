//! # multiagents
//!
//! Durable multi-step workflows (sagas) whose steps are workers compiled to
//! WebAssembly, over a pluggable backend: in-memory (the embedded default),
//! Redis, NATS or Kafka.
//!
//! This crate is the one users depend on. It re-exports
//! [`multiagents_core`] (contracts, in-memory backends, worker host,
//! orchestrator) and adds:
//!
//! | module | owns |
//! |---|---|
//! | [`runtime`] | [`Runtime`]: backends + cached store + worker host + orchestrator, from a builder or a config file |
//! | [`doctor`] | the tuning checklist, executable (`multiagents doctor`) |
//! | [`loadtest`] | open-loop load tests and the stress ramp (`multiagents loadtest`) |
//! | [`config`] | [`Config`]: the TOML file (validated, with `file:line:column` errors) and env overrides |
//! | `admin` | (feature `admin`, default) the HTTP admin listener: `/metrics`, health checks, the JSON API, the web console |
//! | `scaling` | (feature `admin`) the autoscaling advisor: instances needed, from each instance's figures, as metrics |
//! | [`backend`] | backend selection by URL scheme (`memory://`; `redis://` with the feature `redis`; `nats://` with `nats`; `kafka://` with `kafka`) |
//! | `redis` | (feature `redis`) the Redis backend crate, [`multiagents_redis`], re-exported |
//! | `nats` | (feature `nats`) the NATS backend crate, `multiagents_nats`, re-exported |
//! | `kafka` | (feature `kafka`) the Kafka backend crate, `multiagents_kafka`, re-exported |
//! | `telemetry` | (feature `otel`) OTLP export of the orchestrator's trace spans (`trace` propagates them without it) |
//!
//! The `multiagents` binary (CLI) is built on the same API.
//!
//! ```
//! use std::time::Duration;
//! use multiagents::Runtime;
//! use multiagents::worker::{CallInfo, WorkerSpec, native};
//! use multiagents::workflow::{StepDef, WorkflowDef};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)] async fn main() -> multiagents::Result<()> {
//! // A native worker (WebAssembly components register with `.worker_wasm`):
//! // it returns `{"greeted": true}` as CBOR, merged into the context.
//! let greet = native(|_call: CallInfo, _input| async move {
//!     Ok(bytes::Bytes::from_static(&[0xa1, 0x67, b'g', b'r', b'e', b'e', b't', b'e', b'd', 0xf5]))
//! });
//! let runtime = Runtime::builder()
//!     .worker_native("greet", greet, WorkerSpec::default())
//!     .workflow(WorkflowDef::builder("hello").step(StepDef::new("greet", "greet")).build())
//!     .build()
//!     .await?;
//! let done = runtime.run("hello", serde_json::json!({"name": "Ada"}), Duration::from_secs(5)).await?;
//! assert_eq!(done.output, Some(serde_json::json!({"name": "Ada", "greeted": true})));
//! runtime.shutdown(Duration::from_secs(1)).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use multiagents_core::*;

#[cfg(feature = "admin")]
pub mod admin;
pub mod backend;
pub mod config;
pub mod doctor;
pub mod loadtest;
pub mod runtime;
#[cfg(feature = "admin")]
pub mod scaling;
#[cfg(feature = "otel")]
pub mod telemetry;

/// The Redis backend (feature `redis`): `RedisTransport`, `RedisStore`,
/// `RedisConfig`.
#[cfg(feature = "redis")]
pub use multiagents_redis as redis;

/// The NATS backend (feature `nats`): `NatsTransport`, `NatsStore`,
/// `NatsConfig` (and the `async_nats` client it is built on).
#[cfg(feature = "nats")]
pub use multiagents_nats as nats;

/// The Kafka backend (feature `kafka`): `KafkaTransport`, `KafkaConfig`
/// (and the `rdkafka` client it is built on).
#[cfg(feature = "kafka")]
pub use multiagents_kafka as kafka;

pub use config::Config;
pub use runtime::{EventStream, Runtime, RuntimeBuilder};
