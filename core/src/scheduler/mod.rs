//! The scheduler contract: durable timers, one per store key, written in the
//! same atomic step as that key's state.
//!
//! A [`StateStore`](crate::StateStore) that keeps timers returns its
//! [`Scheduler`] from [`StateStore::scheduler`](crate::StateStore::scheduler),
//! and its [`compare_and_swap_timed`](crate::StateStore::compare_and_swap_timed)
//! sets, moves or clears the key's timer with the write ([`TimerChange`]): a
//! timer is never ahead of or behind the state it guards, whatever crashes.
//! The orchestrator arms a transaction's timer with the state change that
//! starts a wait (a retry backoff, a queue timeout, the guard of a step run
//! in-process) and cancels it with the change that ends the wait.
//!
//! # Contract
//!
//! * **At T.** A timer is due from `due_ms` (ms since the Unix epoch) on;
//!   [`claim_due`](Scheduler::claim_due) returns it from then, not before.
//! * **At least once, across crashes.** A claim moves the timer to
//!   `now + lease` instead of removing it: if the claimer dies before it
//!   settles, the timer fires again (to any instance) after the lease.
//! * **Settle only what you claimed.** [`settle`](Scheduler::settle) removes
//!   or moves a claimed timer only if nobody changed it since the claim (a
//!   state write arming the next wait wins over a stale claimer).
//! * **Renew.** [`move_if`](Scheduler::move_if) moves a timer only if it
//!   is still where its mover last put it (a heartbeat never overrides a
//!   claim or a state write).
//! * **Cancel or complete early.** A timed write's [`TimerChange::Clear`],
//!   or [`cancel`](Scheduler::cancel), removes a timer before it is due.
//! * **One per key.** Setting a key's timer again moves it.
//! * **Scopes.** A timer belongs to the *scope* of its key: the key up to
//!   its first `/` ([`scope_of`]). A claim takes timers of one scope only,
//!   so users of one store under different prefixes (two orchestrators, a
//!   test) never claim each other's timers.
//!
//! Implementations: [`MemoryScheduler`] (kept by the [`MemoryStore`](crate::MemoryStore)),
//! the Redis store's sorted set. A store without timers returns `None`;
//! the orchestrator then falls back to timer messages on a transport with
//! delayed redelivery (`nack(delay)`).

mod memory;

use std::time::Duration;

use async_trait::async_trait;

pub use memory::MemoryScheduler;

use crate::error::Result;

/// What a timed compare-and-swap does to the key's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerChange {
    /// Leaves it as it is.
    Keep,
    /// Sets (or moves) it to fire at this time (ms since the Unix epoch).
    At(u64),
    /// Removes it.
    Clear,
}

/// A timer returned by [`Scheduler::claim_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimer {
    /// The store key it belongs to.
    pub key: String,
    /// When it was due (ms since the Unix epoch).
    pub due_ms: u64,
    /// Identifies this claim, for [`Scheduler::settle`].
    pub claim: u64,
}

/// How a claimed timer is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Handled: remove it.
    Done,
    /// Not yet: fire again at this time (ms since the Unix epoch).
    At(u64),
}

/// What a scheduler is like.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchedulerCapabilities {
    /// Backend name.
    pub name: &'static str,
    /// How soon a consumer looks again after finding nothing due yet (it
    /// sleeps until the next timer is due, at least this long): the timing
    /// precision it can expect.
    pub poll_interval: Duration,
}

impl SchedulerCapabilities {
    /// A scheduler named `name`, polled every `poll_interval`.
    pub fn new(name: &'static str, poll_interval: Duration) -> Self {
        SchedulerCapabilities { name, poll_interval }
    }
}

/// Durable timers, one per store key. Object safe.
#[async_trait]
pub trait Scheduler: Send + Sync + 'static {
    /// What this scheduler is like.
    fn capabilities(&self) -> SchedulerCapabilities;

    /// Sets (or moves) `key`'s timer to `due_ms`, on its own (a state
    /// change arms timers with [`StateStore::compare_and_swap_timed`](crate::StateStore::compare_and_swap_timed)).
    ///
    /// # Behavior
    /// - A bad key → `InvalidInput`.
    async fn schedule(&self, key: &str, due_ms: u64) -> Result<()>;

    /// Removes `key`'s timer; returns whether there was one.
    async fn cancel(&self, key: &str) -> Result<bool>;

    /// Claims up to `limit` timers of `scope` due at `now_ms`, earliest first. Each is
    /// moved to `now_ms + lease`, so it fires again unless it is settled
    /// (or changed) by then.
    ///
    /// # Behavior
    /// - `limit == 0` or a zero `lease` → `InvalidInput`.
    /// - Of concurrent claimers, one gets a given firing.
    async fn claim_due(
        &self,
        scope: &str,
        now_ms: u64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueTimer>>;

    /// Settles a claimed timer, only if it was not changed since `claim`;
    /// returns whether it was settled.
    async fn settle(&self, key: &str, claim: u64, how: Settle) -> Result<bool>;

    /// Moves `key`'s timer from `from_ms` to `to_ms`, only if it is still
    /// set to fire at exactly `from_ms` (not changed, claimed or removed
    /// since); returns whether it moved. A holder of a lease-like timer
    /// (the guard of a step running in-process) renews it by this.
    async fn move_if(&self, key: &str, from_ms: u64, to_ms: u64) -> Result<bool>;

    /// How many timers of `scope` are set (due or not).
    async fn pending(&self, scope: &str) -> Result<u64>;

    /// When the earliest timer of `scope` is due (a claimed one: when its
    /// lease ends), or `None` without timers. A consumer sleeps until then.
    async fn next_due(&self, scope: &str) -> Result<Option<u64>>;
}

#[async_trait]
impl<T: Scheduler + ?Sized> Scheduler for std::sync::Arc<T> {
    fn capabilities(&self) -> SchedulerCapabilities {
        (**self).capabilities()
    }
    async fn schedule(&self, key: &str, due_ms: u64) -> Result<()> {
        (**self).schedule(key, due_ms).await
    }
    async fn cancel(&self, key: &str) -> Result<bool> {
        (**self).cancel(key).await
    }
    async fn claim_due(
        &self,
        scope: &str,
        now_ms: u64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<DueTimer>> {
        (**self).claim_due(scope, now_ms, limit, lease).await
    }
    async fn settle(&self, key: &str, claim: u64, how: Settle) -> Result<bool> {
        (**self).settle(key, claim, how).await
    }
    async fn move_if(&self, key: &str, from_ms: u64, to_ms: u64) -> Result<bool> {
        (**self).move_if(key, from_ms, to_ms).await
    }
    async fn pending(&self, scope: &str) -> Result<u64> {
        (**self).pending(scope).await
    }
    async fn next_due(&self, scope: &str) -> Result<Option<u64>> {
        (**self).next_due(scope).await
    }
}

/// Checks `claim_due`'s arguments (the rule every scheduler keeps).
pub fn check_claim(limit: usize, lease: Duration, operation: &'static str) -> Result<()> {
    use crate::error::{Error, ErrorKind};
    if limit == 0 {
        return Err(
            Error::new(ErrorKind::InvalidInput, "claim limit must be at least 1")
                .with_operation(operation)
                .with_context("limit", 0),
        );
    }
    if lease.is_zero() {
        return Err(
            Error::new(ErrorKind::InvalidInput, "claim lease must be longer than zero")
                .with_operation(operation),
        );
    }
    Ok(())
}

/// The scope of `key`'s timer: `key` up to its first `/` (all of it
/// without one).
pub fn scope_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(scope, _)| scope)
}

/// Milliseconds in `d`, saturating.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
