//! Workers: what runs a workflow step.
//!
//! A [`Worker`] takes a step's input (CBOR bytes) and returns its output
//! (CBOR bytes) or a typed error. WebAssembly components (feature `wasm`,
//! [`wasm`]) and native Rust closures ([`native`]) implement the same trait,
//! so a host can mix them. The [`WorkerHost`] registers workers by name and
//! runs every call through the worker's [`Guard`](crate::resilience::Guard)
//! (breaker → concurrency limit → timeout).
//!
//! | module | owns |
//! |---|---|
//! | this file | [`Worker`], [`CallInfo`], the worker-error helpers |
//! | [`spec`] | [`WorkerSpec`]: limits and grants of one registration |
//! | [`host`] | [`WorkerHost`]: registry, invocation through the guard, stats |
//! | [`lease`] | [`Lease`]: until when a run may still write worker state |
//! | [`native`] | [`native`](native::native): closures as workers |
//! | [`wasm`] | the wasmtime engine, component cache, host imports, fresh/reuse instances |

pub mod host;
pub mod lease;
pub mod native;
pub mod spec;
#[cfg(feature = "wasm")]
pub mod wasm;

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use host::{WorkerHost, WorkerHostBuilder, WorkerStats};
pub use lease::Lease;
pub use native::native;
pub use spec::{StateQuota, WorkerSpec};

use crate::error::{Error, ErrorKind, Result};

/// Which step command a call serves (the WIT `call-info`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallInfo {
    /// The saga run; stable across steps, retries and compensations.
    pub transaction_id: String,
    /// The workflow definition's name.
    pub workflow: String,
    /// The step's name (a compensation runs under its compensation step name).
    pub step: String,
    /// 1 for the first attempt, +1 per retry.
    pub attempt: u32,
}

impl CallInfo {
    /// A call description.
    pub fn new(
        transaction_id: impl Into<String>,
        workflow: impl Into<String>,
        step: impl Into<String>,
        attempt: u32,
    ) -> Self {
        CallInfo {
            transaction_id: transaction_id.into(),
            workflow: workflow.into(),
            step: step.into(),
            attempt,
        }
    }
}

impl fmt::Display for CallInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}#{} (tx {})",
            self.workflow, self.step, self.attempt, self.transaction_id
        )
    }
}

/// Runs one step. Object safe: registries hold `Arc<dyn Worker>`.
///
/// # Behavior
/// - `Ok(bytes)`: the step's output, CBOR.
/// - A worker's own failure is an error of kind [`ErrorKind::Worker`]
///   ([`retryable`] or [`fatal`]); anything else (trap, timeout, resource
///   limit, bad output) has its own kind.
#[async_trait]
pub trait Worker: Send + Sync + 'static {
    /// Handles one call.
    async fn call(&self, call: &CallInfo, input: Bytes) -> Result<Bytes>;

    /// Memory the worker holds for its instances, in bytes, if it can
    /// tell (a WebAssembly worker: the linear memory of its live
    /// instances). For metrics; the default is `None`.
    fn memory_bytes(&self) -> Option<usize> {
        None
    }
}

/// A worker's retryable failure: the step may be retried.
pub fn retryable(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Worker, message.into()).with_retryable(true)
}

/// A worker's fatal failure: retrying cannot help; the workflow compensates.
pub fn fatal(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Worker, message.into()).with_retryable(false)
}
