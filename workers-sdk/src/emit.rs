//! Publishing events: the `multiagents:worker/emit` interface.

use std::fmt;

use serde::Serialize;

use crate::codec;

/// An event could not be published.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmitError {
    /// The payload could not be encoded as CBOR.
    Encode(String),
    /// The host refused or failed to publish: the topic is not permitted to
    /// this worker, a limit was exceeded, or the transport failed. The
    /// message is the host's.
    Rejected {
        /// The topic.
        topic: String,
        /// The host's reason.
        reason: String,
    },
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Encode(m) => write!(f, "event payload: {m}"),
            EmitError::Rejected { topic, reason } => write!(f, "emit to `{topic}` failed: {reason}"),
        }
    }
}

impl std::error::Error for EmitError {}

/// `Rejected` is retryable (the host's answer does not say whether a
/// transport failure or a missing permission caused it, and the step's retry
/// limit bounds the cost of retrying the latter); `Encode` is fatal.
impl From<EmitError> for crate::WorkerError {
    fn from(e: EmitError) -> Self {
        match e {
            EmitError::Rejected { .. } => crate::WorkerError::retryable(e.to_string()),
            EmitError::Encode(_) => crate::WorkerError::fatal(e.to_string()),
        }
    }
}

/// Publishes `event`, encoded as CBOR, on `topic`. The host allows only the
/// topics the worker's registration permits. Published when this returns
/// `Ok`, whatever the call's outcome later.
///
/// ```no_run
/// # #[derive(serde::Serialize)] struct Shipped<'a> { order_id: &'a str }
/// multiagents_worker::emit("orders.shipped", &Shipped { order_id: "o-1" })?;
/// # Ok::<(), multiagents_worker::WorkerError>(())
/// ```
pub fn emit<T: Serialize + ?Sized>(topic: &str, event: &T) -> Result<(), EmitError> {
    let payload = codec::to_cbor(event).map_err(|e| EmitError::Encode(e.to_string()))?;
    emit_raw(topic, &payload)
}

/// Publishes `payload` as is (by convention CBOR) on `topic`.
pub fn emit_raw(topic: &str, payload: &[u8]) -> Result<(), EmitError> {
    imp::emit(topic, payload).map_err(|reason| EmitError::Rejected {
        topic: topic.to_owned(),
        reason,
    })
}

#[cfg(target_arch = "wasm32")]
mod imp {
    pub(super) use crate::bindings::multiagents::worker::emit::emit;
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    pub(super) use crate::testing::sim::emit::emit;
}
