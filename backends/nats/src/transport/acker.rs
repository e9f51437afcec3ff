//! Settling a queue delivery: [`NatsAcker`] (ack, nack, progress, abandon)
//! and [`NackCount`], the record that tells nacks from strikes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::AckKind;
use async_nats::jetstream::kv;
use async_nats::jetstream::message::Acker as JsAcker;
use async_trait::async_trait;
use multiagents_core::{Acker, Error, ErrorKind, Result};
use tokio::sync::OwnedSemaphorePermit;

use crate::error;

/// A redelivery's strikes: its earlier deliveries less those that ended in
/// a nack. When the nack count cannot be read (the server is restarting,
/// say), none: every earlier delivery is taken for a nack. A poison message
/// is dead-lettered a few deliveries late; guessing the other way would
/// dead-letter healthy work (a timer nacked until due, a command retried
/// through an outage) and strand its transaction.
pub(super) fn strikes(deliveries: u32, nacked: Option<u32>) -> u32 {
    match nacked {
        Some(n) => deliveries.saturating_sub(1).saturating_sub(n),
        None => 0,
    }
}

/// How many times one message was nacked by one group, kept in the nacks
/// bucket under `<consumer, encoded>/<stream sequence>`.
#[derive(Clone)]
pub(super) struct NackCount {
    bucket: kv::Store,
    key: String,
}

impl NackCount {
    /// The record of message `seq` for the consumer whose name, encoded
    /// for KV keys, is `consumer_key` (see [`NackCount::consumer_key`]).
    pub(super) fn new(bucket: kv::Store, consumer_key: &str, seq: u64) -> NackCount {
        NackCount {
            bucket,
            key: format!("{consumer_key}/{seq}"),
        }
    }

    /// A consumer's name as it starts its records' keys: consumer names
    /// hold `~`, outside KV's key alphabet. Computed once per subscription.
    pub(super) fn consumer_key(consumer: &str) -> String {
        crate::names::encode_key(consumer)
    }

    /// The recorded count: 0 when there is none, `None` when it cannot be
    /// read (see [`strikes`]).
    pub(super) async fn read(&self) -> Option<u32> {
        match self.bucket.get(self.key.as_str()).await {
            Ok(Some(bytes)) => Some(
                std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            ),
            Ok(None) => Some(0),
            Err(e) => {
                tracing::warn!(error = %e, key = %self.key,
                    "cannot read a nack count; this redelivery is not counted as a strike");
                None
            }
        }
    }

    async fn record(&self, count: u32) -> Result<()> {
        self.bucket
            .put(self.key.as_str(), count.to_string().into())
            .await
            .map(drop)
            .map_err(|e| error::other("nats.nack", e))
    }

    /// Drops the record, in the background (a leftover expires with the
    /// bucket's max age, as it does without a tokio runtime to run on).
    pub(super) fn forget(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        handle.spawn(async move {
            let _ = this.bucket.purge(this.key.as_str()).await;
        });
    }
}

/// Settles one JetStream delivery; holds one of its subscription's
/// in-flight slots until settled or abandoned.
pub(super) struct NatsAcker {
    acker: Arc<JsAcker>,
    slot: Mutex<Option<OwnedSemaphorePermit>>,
    nacks: NackCount,
    /// Nacks recorded before this delivery.
    nacked: u32,
    /// The ack timeout, and when it last started (receipt or progress):
    /// past it the server may have handed the message to another consumer.
    ack_wait: Duration,
    touched: Mutex<Instant>,
}

impl NatsAcker {
    pub(super) fn new(
        acker: JsAcker,
        slot: OwnedSemaphorePermit,
        nacks: NackCount,
        nacked: u32,
        ack_wait: Duration,
        fetched: Instant,
    ) -> NatsAcker {
        NatsAcker {
            acker: Arc::new(acker),
            slot: Mutex::new(Some(slot)),
            nacks,
            nacked,
            ack_wait,
            touched: Mutex::new(fetched),
        }
    }

    fn release(&self) {
        if let Ok(mut slot) = self.slot.lock() {
            slot.take();
        }
    }
}

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(&self) -> Result<()> {
        self.acker
            .double_ack()
            .await
            .map_err(|e| error::boxed("nats.ack", e))?;
        self.release();
        if self.nacked > 0 {
            self.nacks.forget();
        }
        Ok(())
    }

    async fn nack(&self, delay: Duration) -> Result<()> {
        self.nacks.record(self.nacked.saturating_add(1)).await?;
        let kind = if delay.is_zero() {
            AckKind::Nak(None)
        } else {
            AckKind::Nak(Some(delay))
        };
        self.acker
            .ack_with(kind)
            .await
            .map_err(|e| error::boxed("nats.nack", e))?;
        self.release();
        Ok(())
    }

    /// Restarts the ack timer, unless it already ran out: then the server
    /// may have redelivered the message, and this holder lost it
    /// (`Timeout`). (The server accepts a late `+WPI` silently, so the
    /// check is made here, by this process's clock.)
    async fn progress(&self) -> Result<()> {
        let now = Instant::now();
        let poisoned = || {
            Error::new(ErrorKind::Unexpected, "a delivery's lock was poisoned")
                .with_operation("nats.progress")
        };
        {
            let touched = self.touched.lock().map_err(|_| poisoned())?;
            let held = now.saturating_duration_since(*touched);
            if held >= self.ack_wait {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "the delivery was held {held:?} without progress, past its ack timeout of {:?}: \
                         it may have gone to another consumer",
                        self.ack_wait
                    ),
                )
                .with_operation("nats.progress")
                .with_retryable(false));
            }
        }
        self.acker
            .double_ack_with(AckKind::Progress)
            .await
            .map_err(|e| error::boxed("nats.progress", e))?;
        // Only a progress the server answered restarts the timer (a failed
        // one must not let a later one pass the check above).
        let mut touched = self.touched.lock().map_err(|_| poisoned())?;
        *touched = (*touched).max(now);
        Ok(())
    }

    /// A strike: handed back at once (a `NAK` that is not recorded), or,
    /// dropped outside a tokio runtime, after the ack timeout.
    fn abandon(&self) {
        self.release();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let acker = self.acker.clone();
        handle.spawn(async move {
            if let Err(e) = acker.ack_with(AckKind::Nak(None)).await {
                tracing::debug!(error = %e, "NAK of an abandoned delivery failed; it returns after the ack timeout");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::strikes;

    #[test]
    fn strikes_are_deliveries_that_ended_without_a_nack() {
        assert_eq!(strikes(1, Some(0)), 0, "a first delivery");
        assert_eq!(strikes(6, Some(5)), 0, "five nacks");
        assert_eq!(strikes(6, Some(2)), 3, "two nacks, three drops");
        assert_eq!(strikes(2, Some(9)), 0, "a count ahead of the deliveries");
    }

    #[test]
    fn an_unreadable_count_is_no_strike() {
        assert_eq!(strikes(7, None), 0);
        assert_eq!(strikes(u32::MAX, None), 0);
    }
}
