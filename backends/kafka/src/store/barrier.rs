//! Barriers for fresh reads, shared: `get_fresh` on a partition needs a
//! changelog record appended after the call began (every write
//! acknowledged before it lies below that record), and any such record
//! serves every call that began before it was sent.
//!
//! So each instance appends at most one barrier per partition at a time.
//! A call that arrives while one is on its way joins the *next* one, which
//! is sent as soon as the current one is appended and serves every call
//! that joined it. Under load a partition gets one barrier per append round
//! trip, not one per read: the changelog, which every instance reads from
//! the beginning when it starts (and which Tansu neither compacts nor
//! indexes), grows that much slower. The price: a read that arrives during
//! an append waits for it and then for its own (two round trips, not one).
//! An idle partition's lone read costs one append, as before.
//!
//! The append runs in a task of its own, so a caller that gives up (a
//! timeout, a dropped future) leaves the others' barrier going.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use multiagents_core::{Error, ErrorKind, Result};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::copy_error;

const OP: &str = "kafka.store.barrier";

/// A barrier's outcome: the offset it was appended at.
type Outcome = Option<std::result::Result<i64, Arc<Error>>>;

/// Appends a barrier to a partition and returns its offset.
pub(crate) type Append = Arc<dyn Fn(i32) -> Pin<Box<dyn Future<Output = Result<i64>> + Send>> + Send + Sync>;

/// One partition's barriers.
#[derive(Default)]
struct Slot {
    /// The next barrier, not sent yet: calls join it.
    next: Mutex<Option<watch::Receiver<Outcome>>>,
    /// Held while a barrier is appended: one at a time.
    sending: tokio::sync::Mutex<()>,
}

/// The barriers of every partition of the changelog.
pub(crate) struct Barriers {
    slots: Vec<Arc<Slot>>,
    append: Append,
    closed: CancellationToken,
}

impl Barriers {
    /// Barriers for `partitions`, appended by `append`, until `closed`.
    pub(crate) fn new(partitions: i32, append: Append, closed: CancellationToken) -> Barriers {
        let n = usize::try_from(partitions.max(1)).unwrap_or(1);
        Barriers {
            slots: (0..n).map(|_| Arc::default()).collect(),
            append,
            closed,
        }
    }

    /// The offset of a barrier on partition `p` sent after this call began.
    ///
    /// # Errors
    /// The append's error (each caller of a shared barrier gets a copy);
    /// `Closed` once the store is closed; `Unexpected` if the append's task
    /// ended without an outcome (its runtime shut down).
    pub(crate) async fn offset(&self, p: i32) -> Result<i64> {
        let Some(slot) = usize::try_from(p).ok().and_then(|i| self.slots.get(i)) else {
            return Err(
                Error::new(ErrorKind::Unexpected, format!("kafka store: no partition {p}"))
                    .with_operation(OP),
            );
        };
        if self.closed.is_cancelled() {
            return Err(crate::error::closed(OP));
        }
        let mut rx = self.join(slot, p)?;
        let outcome = tokio::select! {
            got = rx.wait_for(Option::is_some) => got.map(|o| o.clone()),
            () = self.closed.cancelled() => return Err(crate::error::closed(OP)),
        };
        match outcome {
            Ok(Some(Ok(offset))) => Ok(offset),
            Ok(Some(Err(e))) => Err(copy_error(&e)),
            Ok(None) | Err(_) => Err(Error::new(
                ErrorKind::Unexpected,
                "kafka store: a barrier's append ended without an outcome (its runtime shut down)",
            )
            .with_operation(OP)
            .with_context("partition", p)),
        }
    }

    /// The next barrier of `slot`: the one waiting to be sent, or a new one.
    fn join(&self, slot: &Arc<Slot>, p: i32) -> Result<watch::Receiver<Outcome>> {
        // Only plain assignments happen under the lock: its data is sound
        // even if a panic poisoned it.
        let mut next = slot.next.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(rx) = next.as_ref() {
            // A round whose task is gone (its runtime shut down before it
            // started) is replaced, not joined.
            if rx.has_changed().is_ok() {
                return Ok(rx.clone());
            }
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::new(
                ErrorKind::Unexpected,
                "kafka store: a fresh read outside a tokio runtime",
            )
            .with_operation(OP)
        })?;
        let (tx, rx) = watch::channel(None);
        runtime.spawn(send(slot.clone(), self.append.clone(), p, tx));
        *next = Some(rx.clone());
        Ok(rx)
    }
}

/// Sends the barrier `tx` announces, once the one before it is appended;
/// from the moment it starts, later calls wait for the barrier after it.
async fn send(slot: Arc<Slot>, append: Append, p: i32, tx: watch::Sender<Outcome>) {
    let _turn = slot.sending.lock().await;
    *slot.next.lock().unwrap_or_else(PoisonError::into_inner) = None;
    let outcome = append(p).await;
    tx.send_replace(Some(outcome.map_err(Arc::new)));
}

#[cfg(test)]
#[path = "barrier_tests.rs"]
mod tests;
