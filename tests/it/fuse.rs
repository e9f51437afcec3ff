//! A fuse for killing an instance between any two of its effects: the
//! transport, store and scheduler wrappers below count every effect (a
//! publish, a broadcast, an ack/nack/progress, a state write, a timer
//! claim, settle, move or set) and, once `allowed` of them have started,
//! hang every further one forever, and take no new delivery: what a
//! process killed at that point leaves behind. Reads pass (a dead process
//! reads nothing that matters).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use multiagents::scheduler::{DueTimer, Scheduler, SchedulerCapabilities, Settle, TimerChange};
use multiagents::store::{Expected, PutEntry, ScanPage, StoreCapabilities, Version, Versioned};
use multiagents::{
    Acker, Capabilities, Delivery, Envelope, Result, StateStore, SubscribeMode, SubscribeOptions,
    Subscription, Transport,
};

/// Counts effects; after `allowed` of them, every further one hangs.
#[derive(Clone)]
pub(crate) struct Fuse {
    started: Arc<AtomicU64>,
    allowed: u64,
}

impl Fuse {
    pub(crate) fn new(allowed: u64) -> Self {
        Fuse {
            started: Arc::new(AtomicU64::new(0)),
            allowed,
        }
    }

    /// Effects started so far (the allowed ones, once blown).
    pub(crate) fn effects(&self) -> u64 {
        self.started.load(Ordering::SeqCst).min(self.allowed)
    }

    /// Whether every allowed effect has started: the instance is dead (or
    /// finishing its last effect).
    pub(crate) fn dead(&self) -> bool {
        self.started.load(Ordering::SeqCst) >= self.allowed
    }

    async fn effect<T>(&self, fut: impl Future<Output = T>) -> T {
        if self.started.fetch_add(1, Ordering::SeqCst) >= self.allowed {
            std::future::pending::<()>().await;
        }
        fut.await
    }
}

/// A transport behind a fuse.
pub(crate) struct FusedTransport(pub(crate) Arc<dyn Transport>, pub(crate) Fuse);

struct FusedAcker(tokio::sync::Mutex<Delivery>, Fuse);

#[async_trait]
impl Acker for FusedAcker {
    async fn ack(&self) -> Result<()> {
        self.1.effect(async { self.0.lock().await.ack().await }).await
    }
    async fn nack(&self, delay: Duration) -> Result<()> {
        self.1
            .effect(async { self.0.lock().await.nack(delay).await })
            .await
    }
    async fn progress(&self) -> Result<()> {
        self.1
            .effect(async { self.0.lock().await.progress().await })
            .await
    }
    // `abandon` and `forget` are not forwarded: the inner delivery, dropped
    // unsettled with this acker, abandons itself (a forgotten one is thus
    // handed back at once rather than after the ack timeout; the fuse
    // tests do not depend on which).
}

#[async_trait]
impl Transport for FusedTransport {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn publish(&self, e: Envelope) -> Result<()> {
        self.1.effect(self.0.publish(e)).await
    }
    async fn publish_batch(&self, es: Vec<Envelope>) -> Result<()> {
        self.1.effect(self.0.publish_batch(es)).await
    }
    async fn broadcast(&self, es: Vec<Envelope>) -> Result<()> {
        self.1.effect(self.0.broadcast(es)).await
    }
    async fn subscribe(&self, t: &str, m: SubscribeMode, o: SubscribeOptions) -> Result<Subscription> {
        let fuse = self.1.clone();
        let inner = self.0.subscribe(t, m, o).await?;
        Ok(Subscription::new(inner.then(move |d| {
            let fuse = fuse.clone();
            async move {
                if fuse.dead() {
                    std::future::pending::<()>().await;
                }
                let d = d?;
                let (env, count) = (d.envelope().clone(), d.delivery_count());
                Ok(Delivery::new(
                    env,
                    count,
                    Box::new(FusedAcker(tokio::sync::Mutex::new(d), fuse)),
                ))
            }
        })))
    }
}

/// A store (and its scheduler) behind a fuse.
pub(crate) struct FusedStore(pub(crate) Arc<dyn StateStore>, pub(crate) Fuse);

#[async_trait]
impl StateStore for FusedStore {
    fn capabilities(&self) -> StoreCapabilities {
        self.0.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.0.get(key).await
    }
    async fn get_fresh(&self, key: &str) -> Result<Option<Versioned>> {
        self.0.get_fresh(key).await
    }
    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        self.1.effect(self.0.put(key, value, ttl)).await
    }
    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        self.1.effect(self.0.put_batch(entries)).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.1.effect(self.0.delete(key)).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        e: Expected,
        v: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        self.1.effect(self.0.compare_and_swap(key, e, v, ttl)).await
    }
    fn scheduler(&self) -> Option<Arc<dyn Scheduler>> {
        let inner = self.0.scheduler()?;
        Some(Arc::new(FusedScheduler(inner, self.1.clone())))
    }
    async fn compare_and_swap_timed(
        &self,
        key: &str,
        e: Expected,
        v: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        self.1
            .effect(self.0.compare_and_swap_timed(key, e, v, ttl, timer))
            .await
    }
    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        self.0.scan(prefix, cursor, limit).await
    }
}

struct FusedScheduler(Arc<dyn Scheduler>, Fuse);

#[async_trait]
impl Scheduler for FusedScheduler {
    fn capabilities(&self) -> SchedulerCapabilities {
        self.0.capabilities()
    }
    async fn schedule(&self, key: &str, due_ms: u64) -> Result<()> {
        self.1.effect(self.0.schedule(key, due_ms)).await
    }
    async fn cancel(&self, key: &str) -> Result<bool> {
        self.1.effect(self.0.cancel(key)).await
    }
    async fn claim_due(&self, scope: &str, now: u64, limit: usize, lease: Duration) -> Result<Vec<DueTimer>> {
        // Only a claim that finds something is an effect; a dead instance
        // claims nothing.
        if self.1.dead() {
            std::future::pending::<()>().await;
        }
        let claimed = self.0.claim_due(scope, now, limit, lease).await?;
        if !claimed.is_empty() {
            self.1.effect(async {}).await;
        }
        Ok(claimed)
    }
    async fn settle(&self, key: &str, claim: u64, how: Settle) -> Result<bool> {
        self.1.effect(self.0.settle(key, claim, how)).await
    }
    async fn move_if(&self, key: &str, from: u64, to: u64) -> Result<bool> {
        self.1.effect(self.0.move_if(key, from, to)).await
    }
    async fn pending(&self, scope: &str) -> Result<u64> {
        self.0.pending(scope).await
    }
    async fn next_due(&self, scope: &str) -> Result<Option<u64>> {
        self.0.next_due(scope).await
    }
}
