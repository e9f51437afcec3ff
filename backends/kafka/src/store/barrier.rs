//! Barriers for fresh reads, shared: `get_fresh` on a partition needs a
//! changelog record appended after the call began (every write
//! acknowledged before it lies below that record), and any such record
//! serves every call that began before it was sent.
//!
//! So each partition has at most one barrier being appended. A call that
//! arrives while one is on its way joins the *next* one, which is sent as
//! soon as the current one is appended and serves every call that joined it.
//! Under load a partition gets one barrier per append round trip, not one
//! per read: the changelog, which every instance reads from the beginning
//! when it starts (and which Tansu neither compacts nor indexes), grows
//! that much slower. An idle partition's lone read costs one append, as
//! before.
//!
//! The append runs in a task of its own, so a caller that gives up (a
//! timeout, a dropped future) leaves the others' barrier going.

use std::sync::{Arc, Mutex};

use multiagents_core::{Error, ErrorKind, Result};
use tokio::sync::watch;

use super::record::Change;
use super::{Core, copy_error};

/// A barrier's outcome: the offset it was appended at.
type Outcome = Option<std::result::Result<i64, Arc<Error>>>;

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
}

impl Barriers {
    pub(crate) fn new(partitions: i32) -> Barriers {
        let n = usize::try_from(partitions.max(1)).unwrap_or(1);
        Barriers {
            slots: (0..n).map(|_| Arc::default()).collect(),
        }
    }

    /// The offset of a barrier on partition `p` sent after this call began.
    ///
    /// # Errors
    /// The append's error (each caller of a shared barrier gets a copy);
    /// `Closed` if the runtime dropped the append.
    pub(crate) async fn offset(&self, core: &Arc<Core>, p: i32) -> Result<i64> {
        const OP: &str = "kafka.store.barrier";
        let Some(slot) = usize::try_from(p).ok().and_then(|i| self.slots.get(i)) else {
            return Err(
                Error::new(ErrorKind::Unexpected, format!("kafka store: no partition {p}"))
                    .with_operation(OP),
            );
        };
        let mut rx = {
            // Nothing panics while holding it: a poisoned lock's data is sound.
            let mut next = slot
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match next.as_ref() {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    *next = Some(rx.clone());
                    tokio::spawn(send(slot.clone(), core.clone(), p, tx));
                    rx
                }
            }
        };
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| crate::error::closed(OP))?;
        match outcome.as_ref() {
            Some(Ok(offset)) => Ok(*offset),
            Some(Err(e)) => Err(copy_error(e)),
            None => Err(crate::error::closed(OP)),
        }
    }
}

/// Sends the barrier `tx` announces, once the one before it is appended;
/// from the moment it starts, later calls wait for the barrier after it.
async fn send(slot: Arc<Slot>, core: Arc<Core>, p: i32, tx: watch::Sender<Outcome>) {
    let _turn = slot.sending.lock().await;
    *slot
        .next
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    let appended = super::changelog::append(&core.producer, &core.changelog, p, &[Change::Barrier]).await;
    let outcome = appended.map(|offsets| offsets.first().copied().unwrap_or_default());
    tx.send_replace(Some(outcome.map_err(Arc::new)));
}

#[cfg(test)]
#[path = "barrier_tests.rs"]
mod tests;
