//! One queue-mode subscription of the in-memory transport: its stream of
//! deliveries, its in-flight slots, and the acker of its deliveries.
//!
//! Each step of the stream waits for a free in-flight slot (a permit of the
//! subscription's semaphore, handed to the delivery's acker and given back
//! when the delivery is settled or dropped), then takes the group's first
//! ready message. When nothing is ready it registers for the group's wake-up
//! *before* looking again (no lost wake-ups) and sleeps until a publish or
//! hand-back, the next delayed/expiry time, or the transport's close.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::Stream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::Shared;
use super::group::{Group, Handout, Settle, Taken};
use crate::envelope::EnvelopeId;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{Acker, Delivery};

/// What a subscription shares with the deliveries it handed out.
struct SubShared {
    group: Arc<Group>,
    /// Free in-flight slots of this subscription.
    slots: Semaphore,
}

/// The stream of a queue-mode subscription.
pub(super) fn stream(
    shared: Arc<Shared>,
    group: Arc<Group>,
    max_in_flight: usize,
) -> impl Stream<Item = Result<Delivery>> + Send + 'static {
    let consumer = Consumer {
        shared,
        sub: Arc::new(SubShared {
            group,
            slots: Semaphore::new(max_in_flight.min(Semaphore::MAX_PERMITS)),
        }),
    };
    futures_util::stream::unfold(consumer, |mut consumer| async move {
        let delivery = consumer.next().await?;
        Some((Ok(delivery), consumer))
    })
}

struct Consumer {
    shared: Arc<Shared>,
    sub: Arc<SubShared>,
}

impl Consumer {
    /// The next delivery, or `None` once the transport is closed.
    async fn next(&mut self) -> Option<Delivery> {
        let shared = &*self.shared;
        let sub = &*self.sub;
        if shared.is_closed() {
            return None;
        }
        // A slot first: a subscriber at its bound takes nothing from the
        // group, so other consumers get the messages.
        let slot = match sub.slots.try_acquire() {
            Ok(slot) => slot,
            Err(_) => {
                let closed = pin!(shared.close.notified());
                if shared.is_closed() {
                    return None;
                }
                tokio::select! {
                    biased;
                    () = closed => return None,
                    // Err only if the semaphore were closed, which it never is.
                    slot = sub.slots.acquire() => slot.ok()?,
                }
            }
        };
        loop {
            if let Taken::Message(h) = sub.group.take(Instant::now()) {
                slot.forget();
                return Some(self.deliver(h));
            }
            // Register before looking again: a publish after this look
            // wakes us.
            let mut notified = pin!(sub.group.notify.notified());
            notified.as_mut().enable();
            let closed = pin!(shared.close.notified());
            if shared.is_closed() {
                return None;
            }
            let wake = match sub.group.take(Instant::now()) {
                Taken::Message(h) => {
                    slot.forget();
                    return Some(self.deliver(h));
                }
                Taken::Empty { wake } => wake,
            };
            tokio::select! {
                biased;
                () = closed => return None,
                () = notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    fn deliver(&self, h: Handout) -> Delivery {
        let acker = MemoryAcker {
            sub: Arc::clone(&self.sub),
            seq: h.seq,
            delivery_count: h.delivery_count,
            id: h.id,
            released: AtomicBool::new(false),
        };
        Delivery::new(h.envelope, h.delivery_count, Box::new(acker))
    }
}

/// Settles one queue-mode delivery on its group and frees its in-flight slot.
struct MemoryAcker {
    sub: Arc<SubShared>,
    seq: u64,
    delivery_count: u32,
    id: EnvelopeId,
    /// Whether the slot was given back (exactly once).
    released: AtomicBool,
}

impl MemoryAcker {
    fn release(&self) {
        if !self.released.swap(true, Ordering::AcqRel) {
            self.sub.slots.add_permits(1);
        }
    }

    fn settle(&self, how: Settle, operation: &'static str) -> Result<()> {
        let fresh = self.sub.group.settle(self.seq, self.delivery_count, how);
        // Settled or stale, this delivery no longer occupies a slot.
        self.release();
        if fresh {
            return Ok(());
        }
        Err(self.expired(
            operation,
            "delivery expired after the ack timeout and was handed out again",
        ))
    }

    /// The typed error of an operation on a delivery that is no longer this one's.
    fn expired(&self, operation: &'static str, message: &'static str) -> Error {
        let group = &self.sub.group;
        Error::new(ErrorKind::Timeout, message)
            .with_retryable(false)
            .with_operation(operation)
            .with_context("topic", group.topic())
            .with_context("group", group.name())
            .with_context("id", self.id)
            .with_context("delivery_count", self.delivery_count)
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn ack(&self) -> Result<()> {
        self.settle(Settle::Ack, "memory.ack")
    }

    async fn nack(&self, delay: Duration) -> Result<()> {
        self.settle(Settle::Nack(delay), "memory.nack")
    }

    async fn progress(&self) -> Result<()> {
        if self
            .sub
            .group
            .extend(self.seq, self.delivery_count, tokio::time::Instant::now())
        {
            return Ok(());
        }
        Err(self.expired(
            "memory.progress",
            "delivery expired after the ack timeout (or was settled) before it was kept in progress",
        ))
    }

    fn abandon(&self) {
        // Stale: the message already belongs to a newer delivery.
        let _fresh = self
            .sub
            .group
            .settle(self.seq, self.delivery_count, Settle::Abandon);
        self.release();
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        self.release();
    }
}
