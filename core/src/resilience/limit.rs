//! A concurrency limit with a bounded wait queue.
//!
//! At most `max_concurrent` permits are out at once; up to `max_queued`
//! callers may wait for one; the next caller gets a typed `Overloaded` error
//! at once — the backpressure signal. The permit is held for the whole call
//! and released when dropped. It records the high-water mark of permits in
//! use, so tests and metrics can prove the bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, ErrorKind, Result};

/// A shareable concurrency limit.
#[derive(Debug)]
pub struct ConcurrencyLimit {
    name: String,
    semaphore: Arc<Semaphore>,
    max_concurrent: usize,
    max_queued: usize,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    queued: AtomicUsize,
    in_use: AtomicUsize,
    high_water: AtomicUsize,
}

impl ConcurrencyLimit {
    /// At most `max_concurrent` at once (minimum 1), at most `max_queued`
    /// waiting. `name` appears in the `Overloaded` error.
    pub fn new(name: impl Into<String>, max_concurrent: usize, max_queued: usize) -> Self {
        let max_concurrent = max_concurrent.max(1);
        ConcurrencyLimit {
            name: name.into(),
            semaphore: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            max_queued,
            counters: Arc::default(),
        }
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
                    .with_context("max_concurrent", self.max_concurrent)
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
            _permit: permit,
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

    /// The configured bound.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
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

/// A held slot; released on drop.
#[derive(Debug)]
pub struct LimitPermit {
    _permit: OwnedSemaphorePermit,
    counters: Arc<Counters>,
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        self.counters.in_use.fetch_sub(1, Ordering::AcqRel);
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
    async fn cancelled_waiter_leaves_the_queue() {
        let limit = ConcurrencyLimit::new("w", 1, 1);
        let _held = limit.acquire().await.expect("held");
        let wait = tokio::time::timeout(std::time::Duration::from_millis(10), limit.acquire()).await;
        assert!(wait.is_err(), "timed out waiting");
        assert_eq!(limit.queued(), 0);
    }
}
