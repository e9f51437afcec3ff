//! [`DeadLetter`]: what a server backend reports of a message it gave up
//! on; [`DeadLetterHook`]: how a subscriber hears of it as it happens.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::envelope::Envelope;
use crate::error::Result;

/// A message a backend moved to its topic's dead letters: after
/// `max_deliveries` strikes (deliveries that ended without an ack or nack),
/// or at once when its bytes are not an envelope. Backends list them with
/// their own `dead_letters(topic, count)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The dead letter's own id in the backend (a stream entry id or
    /// sequence, as text).
    pub id: String,
    /// The group that gave up on it.
    pub group: String,
    /// The original message's id in the backend.
    pub original_id: String,
    /// How many times it had been delivered to that group.
    pub deliveries: u32,
    /// Why: `max_deliveries` or `not_an_envelope`.
    pub reason: String,
    /// The message, when it could be decoded.
    pub envelope: Option<Envelope>,
}

impl DeadLetter {
    /// A dead letter as a backend read it back.
    pub fn new(
        id: impl Into<String>,
        group: impl Into<String>,
        original_id: impl Into<String>,
        deliveries: u32,
        reason: impl Into<String>,
        envelope: Option<Envelope>,
    ) -> DeadLetter {
        DeadLetter {
            id: id.into(),
            group: group.into(),
            original_id: original_id.into(),
            deliveries,
            reason: reason.into(),
            envelope,
        }
    }
}

/// The future a [`DeadLetterHook`] returns.
pub type HookFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Called by a backend when it gives up on a message of a queue
/// subscription after `max_deliveries` strikes, with the envelope and its
/// delivery count ([`SubscribeOptions::on_dead_letter`](super::SubscribeOptions::on_dead_letter)).
///
/// The contract every backend keeps: the hook is awaited *before* the
/// original is settled, so a crash or a failed hook (`Err`) leaves the
/// message to come back, strike out again and call the hook again. A hook
/// is therefore called at least once per dead letter, and must be
/// idempotent. (The orchestrator's fails the attempt the command carried:
/// a dead-lettered step is retried or compensated, never left waiting.)
/// Bytes that are not an envelope are dead-lettered without it.
#[derive(Clone)]
pub struct DeadLetterHook(Arc<dyn Fn(Envelope, u32) -> HookFuture + Send + Sync>);

impl DeadLetterHook {
    /// A hook running `f(envelope, deliveries)`.
    pub fn new<F, Fut>(f: F) -> DeadLetterHook
    where
        F: Fn(Envelope, u32) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        DeadLetterHook(Arc::new(move |e, n| Box::pin(f(e, n))))
    }

    /// Runs the hook for `envelope`, delivered `deliveries` times.
    pub fn call(&self, envelope: Envelope, deliveries: u32) -> HookFuture {
        (self.0)(envelope, deliveries)
    }
}

impl fmt::Debug for DeadLetterHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeadLetterHook")
    }
}

/// Two hooks are equal when they are the same hook.
impl PartialEq for DeadLetterHook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DeadLetterHook {}
