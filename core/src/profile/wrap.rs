//! Backend calls timed at the trait boundary: [`ProfiledStore`] and
//! [`ProfiledTransport`] forward every call to the backend they wrap and
//! record how long it took.
//!
//! A runtime wraps its own store and transport ([`Op::Store`],
//! [`Op::Publish`], and [`Op::QueueWait`] for what it receives); the worker
//! host wraps the ones it hands each WebAssembly worker, so a worker's
//! state and `emit` calls count as its [`Op::HostCalls`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;

use super::{Op, Profiler};
use crate::envelope::Envelope;
use crate::error::Result;
use crate::scheduler::{Scheduler, TimerChange};
use crate::store::{Expected, PutEntry, ScanPage, StateStore, StoreCapabilities, Version, Versioned};
use crate::transport::{Capabilities, QueueDepth, SubscribeMode, SubscribeOptions, Subscription, Transport};

/// The header a profiled publish stamps with its send time (microseconds
/// since the Unix epoch), so the receiver can time the queue wait finer
/// than the envelope's millisecond `created_at_ms`.
pub const SENT_HEADER: &str = "ma-sent-us";

/// Whose calls a wrapper times.
#[derive(Debug, Clone)]
enum Scope {
    /// The runtime's own: one timing per store call or topic.
    Runtime,
    /// A worker's host calls, all under its name.
    Worker(Arc<str>),
}

impl Scope {
    /// Times `work` as the runtime's `runtime_op` for `label`, or as the
    /// worker's host call.
    async fn time<T>(
        &self,
        profiler: &Profiler,
        runtime_op: Op,
        label: &str,
        work: impl Future<Output = T>,
    ) -> T {
        match self {
            Scope::Runtime => profiler.time(runtime_op, label, work).await,
            Scope::Worker(name) => profiler.time(Op::HostCalls, name, work).await,
        }
    }
}

/// A [`StateStore`] whose calls are timed.
#[derive(Debug, Clone)]
pub struct ProfiledStore<S> {
    inner: S,
    profiler: Profiler,
    scope: Scope,
}

impl<S: StateStore> ProfiledStore<S> {
    /// Times the runtime's calls to `inner` ([`Op::Store`]).
    pub fn new(inner: S, profiler: Profiler) -> Self {
        ProfiledStore {
            inner,
            profiler,
            scope: Scope::Runtime,
        }
    }

    /// Times worker `name`'s state calls ([`Op::HostCalls`]).
    pub fn for_worker(inner: S, profiler: Profiler, name: &str) -> Self {
        ProfiledStore {
            inner,
            profiler,
            scope: Scope::Worker(Arc::from(name)),
        }
    }

    async fn timed<T>(&self, call: &str, work: impl Future<Output = T>) -> T {
        self.scope.time(&self.profiler, Op::Store, call, work).await
    }
}

#[async_trait]
impl<S: StateStore> StateStore for ProfiledStore<S> {
    fn capabilities(&self) -> StoreCapabilities {
        self.inner.capabilities()
    }
    async fn get(&self, key: &str) -> Result<Option<Versioned>> {
        self.timed("get", self.inner.get(key)).await
    }
    async fn get_fresh(&self, key: &str) -> Result<Option<Versioned>> {
        self.timed("get_fresh", self.inner.get_fresh(key)).await
    }
    async fn put(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<Version> {
        self.timed("put", self.inner.put(key, value, ttl)).await
    }
    async fn put_batch(&self, entries: Vec<PutEntry>) -> Result<Vec<Version>> {
        self.timed("put_batch", self.inner.put_batch(entries)).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.timed("delete", self.inner.delete(key)).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<Version> {
        self.timed("cas", self.inner.compare_and_swap(key, expected, value, ttl))
            .await
    }
    fn scheduler(&self) -> Option<Arc<dyn Scheduler>> {
        self.inner.scheduler()
    }
    async fn compare_and_swap_timed(
        &self,
        key: &str,
        expected: Expected,
        value: Bytes,
        ttl: Option<Duration>,
        timer: TimerChange,
    ) -> Result<Version> {
        let write = self
            .inner
            .compare_and_swap_timed(key, expected, value, ttl, timer);
        self.timed("cas_timed", write).await
    }
    async fn scan(&self, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<ScanPage> {
        self.timed("scan", self.inner.scan(prefix, cursor, limit)).await
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}

/// A [`Transport`] whose publishes are timed, and whose queue deliveries
/// record how long they waited.
#[derive(Debug, Clone)]
pub struct ProfiledTransport<T> {
    inner: T,
    profiler: Profiler,
    scope: Scope,
}

impl<T: Transport> ProfiledTransport<T> {
    /// Times the runtime's publishes ([`Op::Publish`]) and queue waits
    /// ([`Op::QueueWait`]).
    pub fn new(inner: T, profiler: Profiler) -> Self {
        ProfiledTransport {
            inner,
            profiler,
            scope: Scope::Runtime,
        }
    }

    /// Times worker `name`'s `emit` calls ([`Op::HostCalls`]).
    pub fn for_worker(inner: T, profiler: Profiler, name: &str) -> Self {
        ProfiledTransport {
            inner,
            profiler,
            scope: Scope::Worker(Arc::from(name)),
        }
    }

    fn stamp(&self, mut envelope: Envelope) -> Envelope {
        if self.profiler.enabled() && matches!(self.scope, Scope::Runtime) {
            envelope.headers.retain(|(k, _)| k != SENT_HEADER);
            envelope
                .headers
                .push((SENT_HEADER.to_string(), now_us().to_string()));
        }
        envelope
    }

    /// Times `work` under `label` (`None`: not profiling, nothing built).
    async fn timed(&self, label: Option<String>, work: impl Future<Output = Result<()>>) -> Result<()> {
        match label {
            Some(label) => self.scope.time(&self.profiler, Op::Publish, &label, work).await,
            None => work.await,
        }
    }

    /// The label of a publish of `envelopes`, while profiling.
    fn label(&self, envelopes: &[Envelope]) -> Option<String> {
        self.profiler
            .enabled()
            .then(|| batch_label(envelopes).to_string())
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// How long `envelope` waited: from the stamp of a profiled publish, else
/// from its creation (millisecond precision).
fn waited(envelope: &Envelope) -> Duration {
    let sent_us = envelope
        .headers
        .iter()
        .find(|(k, _)| k == SENT_HEADER)
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(envelope.created_at_ms.saturating_mul(1_000));
    Duration::from_micros(now_us().saturating_sub(sent_us))
}

/// A batch's topic, or `mixed` when its envelopes go to several.
fn batch_label(envelopes: &[Envelope]) -> &str {
    match envelopes {
        [first, rest @ ..] if rest.iter().all(|e| e.topic == first.topic) => &first.topic,
        [] => "empty",
        _ => "mixed",
    }
}

#[async_trait]
impl<T: Transport> Transport for ProfiledTransport<T> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn publish(&self, envelope: Envelope) -> Result<()> {
        let envelope = self.stamp(envelope);
        let label = self.label(std::slice::from_ref(&envelope));
        self.timed(label, self.inner.publish(envelope)).await
    }
    async fn publish_batch(&self, envelopes: Vec<Envelope>) -> Result<()> {
        let label = self.label(&envelopes);
        let envelopes = envelopes.into_iter().map(|e| self.stamp(e)).collect();
        self.timed(label, self.inner.publish_batch(envelopes)).await
    }
    async fn subscribe(
        &self,
        topic: &str,
        mode: SubscribeMode,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        let queue = matches!(mode, SubscribeMode::Queue { .. });
        let subscription = self.inner.subscribe(topic, mode, options).await?;
        if !queue {
            return Ok(subscription);
        }
        let profiler = self.profiler.clone();
        let topic: Arc<str> = Arc::from(topic);
        Ok(Subscription::new(subscription.inspect(move |delivery| {
            // A first delivery only: a redelivery's wait includes its
            // nack delay, which is not queueing.
            if let Ok(d) = delivery
                && d.delivery_count() == 1
                && profiler.enabled()
            {
                profiler.record(Op::QueueWait, &topic, waited(d.envelope()));
            }
        })))
    }
    async fn broadcast(&self, envelopes: Vec<Envelope>) -> Result<()> {
        let label = self.label(&envelopes);
        self.timed(label, self.inner.broadcast(envelopes)).await
    }
    async fn queue_depth(&self, topic: &str, group: &str) -> Result<Option<QueueDepth>> {
        self.inner.queue_depth(topic, group).await
    }
    async fn close(&self) -> Result<()> {
        self.inner.close().await
    }
}
