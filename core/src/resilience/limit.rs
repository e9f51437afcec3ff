//! A concurrency limit with a bounded wait queue.
//!
//! At most `max_concurrent` permits are out at once; up to `max_queued`
//! callers may wait for one; the next caller gets a typed `Overloaded` error
//! at once — the backpressure signal. The permit is held for the whole call
//! and released when dropped. It records the high-water mark of permits in
//! use, so tests and metrics can prove the bound.
//!
//! An [adaptive](ConcurrencyLimit::adaptive) limit moves between a floor
//! and `max_concurrent` as its calls' outcomes say (AIMD, see
//! [`super::aimd`]): growing adds permits; shrinking takes free permits
//! away at once and the rest as calls end (a running call is never cut).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::aimd::{AdaptiveConfig, Aimd, Outcome, is_congestion};
use crate::error::{Error, ErrorKind, Result};

/// A shareable concurrency limit.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    name: String,
    semaphore: Arc<Semaphore>,
    max_concurrent: usize,
    max_queued: usize,
    counters: Arc<Counters>,
    adaptive: Option<Mutex<Aimd>>,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicUsize,
    in_use: AtomicUsize,
    high_water: AtomicUsize,
    /// The limit in force (`max_concurrent` unless adaptive).
    limit: AtomicUsize,
    /// Permits still to take away as calls end (a shrink found them in use).
    debt: AtomicUsize,
}

impl Counters {
    /// Takes one permit of debt, if there is any.
    fn take_debt(&self) -> bool {
        self.debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok()
    }
}

impl ConcurrencyLimit {
    /// At most `max_concurrent` at once (minimum 1), at most `max_queued`
    /// waiting. `name` appears in the `Overloaded` error.
    pub fn new(name: impl Into<String>, max_concurrent: usize, max_queued: usize) -> Self {
        Self::starting_at(name, max_concurrent, max_queued, None)
    }

    /// An adaptive limit: at most `max_concurrent`, at least `config.min`,
    /// moved by its calls' outcomes ([`observe`](Self::observe)).
    pub fn adaptive(
        name: impl Into<String>,
        max_concurrent: usize,
        max_queued: usize,
        config: AdaptiveConfig,
    ) -> Self {
        let aimd = Aimd::new(config, max_concurrent.max(1));
        Self::starting_at(name, max_concurrent, max_queued, Some(aimd))
    }

    fn starting_at(
        name: impl Into<String>,
        max_concurrent: usize,
        max_queued: usize,
        aimd: Option<Aimd>,
    ) -> Self {
        let max_concurrent = max_concurrent.max(1);
        let start = aimd.as_ref().map_or(max_concurrent, Aimd::limit);
        let counters = Counters::default();
        counters.limit.store(start, Ordering::Release);
        ConcurrencyLimit {
            name: name.into(),
            semaphore: Arc::new(Semaphore::new(start)),
            max_concurrent,
            max_queued,
            counters: Arc::new(counters),
            adaptive: aimd.map(Mutex::new),
        }
    }

    /// Tells an adaptive limit how a call went (`failed`: its error's
    /// kind); a fixed limit ignores it.
    pub fn observe(&self, took: Duration, failed: Option<ErrorKind>) {
        let Some(aimd) = &self.adaptive else {
            return;
        };
        let outcome = Outcome {
            took,
            congested: failed.is_some_and(is_congestion),
            in_flight: self.in_use(),
        };
        // Resized under the lock, so two outcomes cannot apply their
        // limits out of order.
        let mut aimd = aimd.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(new) = aimd.observe(outcome) {
            self.resize(new);
        }
    }

    fn resize(&self, new: usize) {
        let old = self.counters.limit.swap(new, Ordering::AcqRel);
        if new > old {
            let mut grow = new - old;
            while grow > 0 && self.counters.take_debt() {
                grow -= 1;
            }
            self.semaphore.add_permits(grow);
        } else if new < old {
            let shrink = old - new;
            let taken = self.semaphore.forget_permits(shrink);
            self.counters.debt.fetch_add(shrink - taken, Ordering::AcqRel);
            // A permit released between the two lines above went back to
            // the semaphore before its debt was written: take it now.
            while self.counters.take_debt() {
                if self.semaphore.forget_permits(1) == 0 {
                    self.counters.debt.fetch_add(1, Ordering::AcqRel);
                    break;
                }
            }
        }
        tracing::debug!(limit = %self.name, from = old, to = new, "adaptive concurrency moved");
    }

    /// Takes a permit, waiting in the bounded queue if needed.
    pub async fn acquire(&self) -> Result<LimitPermit> {
        let permit = match Arc::clone(&self.semaphore).try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(self.closed()),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                let queued = self.counters.queued.fetch_add(1, Ordering::AcqRel);
                if queued >= self.max_queued {
                    self.counters.queued.fetch_sub(1, Ordering::AcqRel);
                    return Err(Error::new(
                        ErrorKind::Overloaded,
                        "concurrency limit reached and its wait queue is full",
                    )
                    .with_context("limit", &self.name)
                    .with_context("max_concurrent", self.current())
                    .with_context("max_queued", self.max_queued));
                }
                let _dequeue = Dequeue(&self.counters);
                Arc::clone(&self.semaphore)
                    .acquire_owned()
                    .await
                    .map_err(|_| self.closed())?
            }
        };
        let in_use = self.counters.in_use.fetch_add(1, Ordering::AcqRel) + 1;
        self.counters.high_water.fetch_max(in_use, Ordering::AcqRel);
        Ok(LimitPermit {
            permit: Some(permit),
            counters: Arc::clone(&self.counters),
        })
    }

    fn closed(&self) -> Error {
        Error::new(ErrorKind::Closed, "concurrency limit closed").with_context("limit", &self.name)
    }

    /// Permits in use now.
    pub fn in_use(&self) -> usize {
        self.counters.in_use.load(Ordering::Acquire)
    }

    /// Callers waiting now.
    pub fn queued(&self) -> usize {
        self.counters.queued.load(Ordering::Acquire)
    }

    /// The most permits ever in use at once.
    pub fn high_water(&self) -> usize {
        self.counters.high_water.load(Ordering::Acquire)
    }

    /// The configured bound (an adaptive limit's ceiling).
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// The limit in force now: `max_concurrent`, or where an adaptive
    /// limit has moved to.
    pub fn current(&self) -> usize {
        self.counters.limit.load(Ordering::Acquire)
    }

    /// Whether it adapts to its calls' outcomes.
    pub fn is_adaptive(&self) -> bool {
        self.adaptive.is_some()
    }

    /// The configured bound of the wait queue.
    pub fn max_queued(&self) -> usize {
        self.max_queued
    }
}

/// Decrements the queue count however the wait ends (acquired or cancelled).
struct Dequeue<'a>(&'a Counters);

impl Drop for Dequeue<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A held slot; released on drop (or taken away, when an adaptive limit
/// shrank below the permits in use).
#[derive(Debug)]
pub struct LimitPermit {
    permit: Option<OwnedSemaphorePermit>,
    counters: Arc<Counters>,
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        self.counters.in_use.fetch_sub(1, Ordering::AcqRel);
        if let Some(permit) = self.permit.take()
            && self.counters.take_debt()
        {
            permit.forget();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bound_queue_and_overload() {
        let limit = Arc::new(ConcurrencyLimit::new("w", 2, 1));
        let a = limit.acquire().await.expect("a");
        let _b = limit.acquire().await.expect("b");
        assert_eq!(limit.in_use(), 2);
        let waiter = {
            let limit = Arc::clone(&limit);
            tokio::spawn(async move { limit.acquire().await.map(|_| ()) })
        };
        while limit.queued() == 0 {
            tokio::task::yield_now().await;
        }
        let err = limit.acquire().await.expect_err("queue full");
        assert_eq!(err.kind(), ErrorKind::Overloaded);
        assert!(err.to_string().contains("max_queued"), "{err}");
        drop(a);
        waiter.await.expect("join").expect("waiter got the freed permit");
        assert_eq!(limit.high_water(), 2);
        assert_eq!(limit.queued(), 0);
    }

    #[tokio::test]
    async fn an_adaptive_limit_shrinks_without_cutting_running_calls_and_grows_back() {
        let config = AdaptiveConfig::default().with_initial(Some(4)).with_min(1);
        let limit = ConcurrencyLimit::adaptive("w", 8, 0, config);
        assert_eq!((limit.current(), limit.max_concurrent()), (4, 8));
        let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| limit.acquire())).await;
        assert!(held.iter().all(Result::is_ok));
        // A timeout with all four running: the limit drops to 3, but the
        // four calls keep their permits; the one to end first gives its
        // permit up for good.
        limit.observe(Duration::from_secs(1), Some(ErrorKind::Timeout));
        assert_eq!(limit.current(), 3);
        drop(held);
        assert_eq!(limit.in_use(), 0);
        let again: Vec<_> = futures_util::future::join_all((0..3).map(|_| limit.acquire())).await;
        assert!(again.iter().all(Result::is_ok));
        let refused = limit.acquire().await.expect_err("only 3 permits now (no queue)");
        assert_eq!(refused.kind(), ErrorKind::Overloaded);
        drop(again);
        // Busy windows without congestion grow it back, one per window.
        for _ in 0..200 {
            let _held: Vec<_> =
                futures_util::future::join_all((0..limit.current()).map(|_| limit.acquire())).await;
            limit.observe(Duration::from_millis(1), None);
        }
        assert_eq!(limit.current(), 8, "up to the ceiling");
        let all: Vec<_> = futures_util::future::join_all((0..8).map(|_| limit.acquire())).await;
        assert!(all.iter().all(Result::is_ok), "8 permits again");
        assert!(limit.high_water() <= 8);
    }

    #[tokio::test]
    async fn growing_while_in_debt_pays_the_debt_before_adding_permits() {
        let config = AdaptiveConfig::default().with_initial(Some(10)).with_min(1);
        let limit = ConcurrencyLimit::adaptive("w", 16, 0, config);
        let held: Vec<_> = futures_util::future::join_all((0..10).map(|_| limit.acquire())).await;
        // All 10 in use: the shrink to 9 is a debt of one permit.
        limit.observe(Duration::from_secs(1), Some(ErrorKind::Timeout));
        assert_eq!(limit.current(), 9);
        // A busy window grows it back to 10 while the debt is unpaid: the
        // growth cancels the debt instead of adding a permit.
        for _ in 0..9 {
            limit.observe(Duration::from_millis(1), None);
        }
        assert_eq!(limit.current(), 10);
        // Ten run, the limit is ten: no eleventh, not even for a moment.
        let eleventh = limit.acquire().await;
        assert!(eleventh.is_err(), "a permit beyond the limit was handed out");
        drop(held);
        let all: Vec<_> = futures_util::future::join_all((0..11).map(|_| limit.acquire())).await;
        assert_eq!(
            all.iter().filter(|p| p.is_ok()).count(),
            10,
            "exactly the limit in force"
        );
    }

    #[tokio::test]
    async fn a_fixed_limit_ignores_outcomes() {
        let limit = ConcurrencyLimit::new("w", 2, 0);
        limit.observe(Duration::from_secs(1), Some(ErrorKind::Timeout));
        assert_eq!(limit.current(), 2);
        assert!(!limit.is_adaptive());
    }

    #[tokio::test]
    async fn cancelled_waiter_leaves_the_queue() {
        let limit = ConcurrencyLimit::new("w", 1, 1);
        let _held = limit.acquire().await.expect("held");
        let wait = tokio::time::timeout(std::time::Duration::from_millis(10), limit.acquire()).await;
        assert!(wait.is_err(), "timed out waiting");
        assert_eq!(limit.queued(), 0);
    }
}
