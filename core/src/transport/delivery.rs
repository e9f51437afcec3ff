//! [`Delivery`] (one received message, settled by ack or nack) and
//! [`Subscription`] (the stream of them).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::{FutureExt, Stream, StreamExt};

use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};

/// Settles one delivery on its backend. Implemented by backends; users call
/// [`Delivery::ack`] and [`Delivery::nack`].
#[async_trait]
pub trait Acker: Send + Sync {
    /// The message was handled: never deliver it to this group again.
    async fn ack(&self) -> Result<()>;
    /// The message was not handled: deliver it again (to any consumer of the
    /// group) no earlier than `delay` from now.
    async fn nack(&self, delay: Duration) -> Result<()>;
    /// The delivery is still being worked on: its ack timeout starts again
    /// (NATS `AckKind::Progress`, a Redis re-claim by its own consumer).
    /// Fails (`Timeout`, not retryable) when the delivery already expired and
    /// was handed to another consumer. The default does nothing, for
    /// backends without an ack timeout.
    async fn progress(&self) -> Result<()> {
        Ok(())
    }
    /// The delivery was dropped unsettled (its consumer went away). Must not
    /// block. Backends that cannot act at once rely on their ack timeout.
    fn abandon(&self) {}
    /// The delivery was given up unsettled by a holder whose hold lapsed
    /// ([`Delivery::forget`]): it must come back in time without settling
    /// another holder's delivery. Must not block. The default does nothing:
    /// the ack timeout brings it back.
    fn forget(&self) {}
    /// A check, without I/O, of whether this consumer still holds the
    /// delivery, for a backend that learns of losing it at once (Kafka: a
    /// revoke of its partition). `None` (the default): it cannot tell
    /// between [`progress`](Self::progress) calls.
    fn holder(&self) -> Option<crate::worker::lease::Holder> {
        None
    }
}

/// One received message. Settle it with [`ack`](Self::ack) or
/// [`nack`](Self::nack); dropping it unsettled hands it back for redelivery
/// (queue mode), like a crashed consumer.
pub struct Delivery {
    envelope: Envelope,
    delivery_count: u32,
    received: Instant,
    acker: Option<Box<dyn Acker>>,
    settled: bool,
}

impl Delivery {
    /// A queue-mode delivery settled through `acker`.
    pub fn new(envelope: Envelope, delivery_count: u32, acker: Box<dyn Acker>) -> Self {
        Delivery {
            envelope,
            delivery_count,
            received: Instant::now(),
            acker: Some(acker),
            settled: false,
        }
    }

    /// A broadcast delivery: nothing to settle (ack and nack are no-ops).
    pub fn unacked(envelope: Envelope) -> Self {
        Delivery {
            envelope,
            delivery_count: 1,
            received: Instant::now(),
            acker: None,
            settled: false,
        }
    }

    /// Sets when the backend handed this message out (a transport that
    /// buffers deliveries before they are received: the time it read them).
    #[must_use]
    pub fn received_at(mut self, at: Instant) -> Self {
        self.received = at;
        self
    }

    /// The message.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.envelope.payload
    }

    /// How many times this message has been delivered to this group,
    /// including this time (1 for the first delivery).
    pub fn delivery_count(&self) -> u32 {
        self.delivery_count
    }

    /// When the transport made this delivery (close after the backend
    /// started its ack timeout): with
    /// [`Capabilities::ack_wait`](crate::Capabilities::ack_wait), how long the
    /// hold lasts without [`progress`](Self::progress).
    pub fn received(&self) -> Instant {
        self.received
    }

    /// Whether this delivery has been acked or nacked.
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    fn check_unsettled(&self, op: &'static str) -> Result<()> {
        if self.settled {
            return Err(
                Error::new(ErrorKind::AlreadySettled, "delivery was already acked or nacked")
                    .with_operation(op)
                    .with_context("id", self.envelope.id)
                    .with_context("topic", &self.envelope.topic),
            );
        }
        Ok(())
    }

    /// Acknowledges the message: the group will not see it again.
    ///
    /// A second ack or nack → `AlreadySettled`, naming the envelope id. If
    /// the backend fails (`Unavailable`), the delivery stays unsettled and
    /// the ack may be retried; otherwise the message is redelivered later.
    pub async fn ack(&mut self) -> Result<()> {
        self.check_unsettled("delivery.ack")?;
        if let Some(acker) = &self.acker {
            acker.ack().await?;
        }
        self.settled = true;
        Ok(())
    }

    /// Rejects the message: it is delivered again no earlier than `delay`.
    /// A second ack or nack → `AlreadySettled`.
    pub async fn nack(&mut self, delay: Duration) -> Result<()> {
        self.check_unsettled("delivery.nack")?;
        if let Some(acker) = &self.acker {
            acker.nack(delay).await?;
        }
        self.settled = true;
        Ok(())
    }

    /// Gives the delivery up without settling it, for a holder that learnt
    /// its hold lapsed (its [`progress`](Self::progress) failed, or it was
    /// frozen past the ack timeout): its ack or nack could settle the
    /// delivery another consumer took over. With an ack timeout nothing is
    /// sent: the message comes back after it, to whichever consumer holds
    /// it by then. Kafka (no per-message timeout) hands it back as if it
    /// were dropped (a strike) while this consumer still holds its
    /// partition.
    pub fn forget(mut self) {
        if !self.settled
            && let Some(acker) = &self.acker
        {
            acker.forget();
        }
        self.settled = true;
    }

    /// The backend's check of whether this consumer still holds the
    /// delivery ([`Acker::holder`]), when it has one.
    pub fn holder(&self) -> Option<crate::worker::lease::Holder> {
        self.acker.as_ref().and_then(|a| a.holder())
    }

    /// Tells the backend this delivery is still being worked on: its ack
    /// timeout starts again, so a handler that outlives the timeout is not
    /// redelivered while it runs. Call it more often than the backend's ack
    /// timeout ([`Capabilities::ack_wait`](crate::Capabilities::ack_wait)).
    ///
    /// A settled delivery → `AlreadySettled`; one that already expired and
    /// went to another consumer → `Timeout` (not retryable). A broadcast
    /// delivery: a no-op.
    pub async fn progress(&self) -> Result<()> {
        self.check_unsettled("delivery.progress")?;
        match &self.acker {
            Some(acker) => acker.progress().await,
            None => Ok(()),
        }
    }

    /// The message, leaving the delivery unsettled (it will be redelivered).
    pub fn into_envelope(mut self) -> Envelope {
        std::mem::replace(&mut self.envelope, Envelope::new("", "", bytes::Bytes::new()))
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if !self.settled
            && let Some(acker) = &self.acker
        {
            acker.abandon();
        }
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("envelope", &self.envelope)
            .field("delivery_count", &self.delivery_count)
            .field("settled", &self.settled)
            .finish()
    }
}

type Inner = Pin<Box<dyn Stream<Item = Result<Delivery>> + Send>>;

/// A stream of [`Delivery`]s. Ends (`None`) when the transport is closed.
///
/// Use [`next`](Self::next) or [`next_batch`](Self::next_batch), or the
/// [`Stream`] implementation. Dropping it leaves the group (see
/// [`Transport::subscribe`](crate::Transport::subscribe)).
pub struct Subscription {
    inner: Inner,
    /// An error met while filling a batch, returned by the next call.
    deferred: Option<Error>,
}

impl Subscription {
    /// Wraps a backend's stream.
    pub fn new(stream: impl Stream<Item = Result<Delivery>> + Send + 'static) -> Self {
        Subscription {
            inner: Box::pin(stream),
            deferred: None,
        }
    }

    /// The next delivery; waits until one is available.
    pub async fn next(&mut self) -> Option<Result<Delivery>> {
        if let Some(e) = self.deferred.take() {
            return Some(Err(e));
        }
        self.inner.next().await
    }

    /// Waits for one delivery, then takes up to `max - 1` more that are
    /// ready without waiting. Returns `None` when the stream has ended and
    /// nothing was taken; an error is returned only when nothing was taken
    /// before it (later errors end the batch and come next time).
    pub async fn next_batch(&mut self, max: usize) -> Option<Result<Vec<Delivery>>> {
        let first = match self.next().await? {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        let mut out = Vec::with_capacity(max.clamp(1, 1024));
        out.push(first);
        while out.len() < max {
            match self.inner.next().now_or_never() {
                Some(Some(Ok(d))) => out.push(d),
                Some(Some(Err(e))) => {
                    self.deferred = Some(e);
                    break;
                }
                _ => break,
            }
        }
        Some(Ok(out))
    }
}

impl Stream for Subscription {
    type Item = Result<Delivery>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(e) = self.deferred.take() {
            return Poll::Ready(Some(Err(e)));
        }
        self.inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}
