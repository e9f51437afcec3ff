//! [`DeadLetter`]: what a server backend reports of a message it gave up
//! on; [`DeadLetterHook`]: how a subscriber hears of it as it happens.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};

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
///
/// Each call is bounded ([`DeadLetterHook::DEFAULT_TIMEOUT`], or
/// [`with_timeout`](DeadLetterHook::with_timeout)): a call that has not
/// finished by then fails with a retryable [`ErrorKind::Timeout`] and is
/// called again, so one call stuck on a dead connection does not hold the
/// message for ever (a hook that hangs on every call still does, a bound
/// at a time; on Kafka with its partition's in-flight slot). A hook that
/// keeps *failing* is
/// called again and again, by design: giving up would drop what the hook
/// exists to save (the orchestrator's hooks fail only while the transport
/// cannot publish).
#[derive(Clone)]
pub struct DeadLetterHook {
    f: Arc<dyn Fn(Envelope, u32) -> HookFuture + Send + Sync>,
    timeout: Duration,
}

impl DeadLetterHook {
    /// How long one call may take unless [`with_timeout`](Self::with_timeout)
    /// says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// A hook running `f(envelope, deliveries)`.
    pub fn new<F, Fut>(f: F) -> DeadLetterHook
    where
        F: Fn(Envelope, u32) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        DeadLetterHook {
            f: Arc::new(move |e, n| Box::pin(f(e, n))),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// The same hook, each call bounded by `timeout` instead.
    pub fn with_timeout(mut self, timeout: Duration) -> DeadLetterHook {
        self.timeout = timeout;
        self
    }

    /// Runs the hook for `envelope`, delivered `deliveries` times; a
    /// retryable `timeout` error if it takes longer than its bound.
    pub fn call(&self, envelope: Envelope, deliveries: u32) -> HookFuture {
        let topic = envelope.topic.clone();
        let run = (self.f)(envelope, deliveries);
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, run).await.unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Timeout,
                    format!("the dead-letter hook did not finish within {timeout:?}"),
                )
                .with_operation("dead_letter_hook")
                .with_context("topic", topic)
                .with_retryable(true))
            })
        })
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
        Arc::ptr_eq(&self.f, &other.f) && self.timeout == other.timeout
    }
}

impl Eq for DeadLetterHook {}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope::new("ma.cmd.w", "tx-1", bytes::Bytes::from_static(b"x"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_finishes_fails_as_a_retryable_timeout() {
        let hook = DeadLetterHook::new(|_e: Envelope, _n: u32| std::future::pending::<Result<()>>())
            .with_timeout(Duration::from_secs(5));
        let e = hook
            .call(envelope(), 3)
            .await
            .expect_err("a hook that never finishes must time out");
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.is_retryable(), "{e}");
        assert_eq!(e.context_value("topic"), Some("ma.cmd.w"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_within_its_bound_returns_what_the_hook_returned() {
        let ok = DeadLetterHook::new(|_e: Envelope, n: u32| async move {
            tokio::time::sleep(Duration::from_secs(29)).await;
            assert_eq!(n, 2);
            Ok(())
        });
        ok.call(envelope(), 2).await.expect("within the default 30 s");
        let refused = DeadLetterHook::new(|_e: Envelope, _n: u32| async {
            Err(Error::new(ErrorKind::Unavailable, "down"))
        });
        let e = refused
            .call(envelope(), 1)
            .await
            .expect_err("the hook's own error");
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    }
}
