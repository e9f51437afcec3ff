//! Which transactions this instance is advancing right now.
//!
//! A state change publishes its commands, writes the state, then publishes
//! its events. An executor in the same process that picks up one of those
//! commands waits here until the whole change is through: it never runs a
//! command (or reads the state) in the middle of the change that dispatched
//! it, so this instance's events of one transaction go out in order
//! (`workflow.started` before the first `step.completed`), and a command
//! that arrives before its state write needs no polling when the writer is
//! local. Instances in other processes are not seen here; for them the
//! executor polls the store ([`super::saga::Fence::Early`]).

use std::sync::Mutex;
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct Gate {
    busy: Mutex<FxHashMap<String, u32>>,
    idle: Notify,
}

/// One state change in progress; dropping it ends the change.
pub(crate) struct Entered<'a> {
    gate: &'a Gate,
    tx: String,
}

impl Gate {
    /// Marks `tx` as being advanced until the returned guard is dropped.
    pub(crate) fn enter(&self, tx: &str) -> Entered<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        *busy.entry(tx.to_string()).or_default() += 1;
        Entered {
            gate: self,
            tx: tx.to_string(),
        }
    }

    fn is_busy(&self, tx: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(tx)
    }

    /// Waits until no change of `tx` is in progress here, at most `limit`.
    /// Returns whether it is idle.
    pub(crate) async fn idle(&self, tx: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_busy(tx) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return !self.is_busy(tx);
            }
        }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        let mut busy = self.gate.busy.lock().unwrap_or_else(|p| p.into_inner());
        let done = match busy.get_mut(&self.tx) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                busy.remove(&self.tx);
                true
            }
            None => false,
        };
        drop(busy);
        if done {
            self.gate.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiter_wakes_when_the_last_change_of_its_transaction_ends() {
        let gate = std::sync::Arc::new(Gate::default());
        let one = gate.enter("t");
        let two = gate.enter("t");
        let _other = gate.enter("u");
        assert!(!gate.idle("t", Duration::from_millis(20)).await, "busy twice");
        drop(one);
        assert!(
            !gate.idle("t", Duration::from_millis(20)).await,
            "still busy once"
        );
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.idle("t", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(two);
        assert!(waiter.await.expect("join"), "idle once both ended");
        assert!(
            !gate.idle("u", Duration::ZERO).await,
            "another transaction is unaffected"
        );
    }
}
