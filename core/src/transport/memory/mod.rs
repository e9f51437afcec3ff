//! [`MemoryTransport`]: the embedded, in-process [`Transport`] (the default
//! backend; no server).
//!
//! It owns a registry of topics; each topic owns its queue groups, the
//! backlog retained while it has no group, and a broadcast channel. Clones
//! of a `MemoryTransport` share one backend, like several runtime instances
//! on one broker.
//!
//! # Queue mode
//!
//! * Every queue group of a topic receives every message published after
//!   the group was created; within a group each message goes to one
//!   consumer at a time, first come first served.
//! * **Retention**: messages published to a topic that has no queue group
//!   yet are kept, like a capped stream (Redis `MAXLEN`, Kafka retention):
//!   the newest [`MemoryTransportConfig::max_retained`] are handed to the
//!   *first* group created on the topic, older ones are trimmed and counted
//!   ([`MemoryTransport::retained_dropped`]). A topic that only ever has
//!   broadcast subscribers (events) thus never grows without bound. Once a
//!   topic has a group, nothing on its queue path is ever dropped. Groups created later start
//!   with the messages published after their creation, so subscribe before
//!   publishing (the orchestrator does).
//! * **Order**: a group hands out messages in publish order; a lone
//!   consumer sees one key's messages in the order they were published.
//!   A message handed back for redelivery returns to its place in that order,
//!   before everything published after it.
//! * **Redelivery** (at-least-once), with
//!   [`Delivery::delivery_count`](crate::Delivery::delivery_count) one higher:
//!   - `nack(Duration::ZERO)` and a delivery dropped unsettled (a crashed
//!     consumer): at once, to any consumer of the group;
//!   - `nack(delay)`: no earlier than `delay` from now;
//!   - a delivery left unsettled for [`MemoryTransportConfig::ack_timeout`]:
//!     handed back; acking or nacking that old delivery afterwards returns
//!     `Timeout` (not retryable) and leaves the message to its new delivery.
//! * **Backpressure**: a subscription holds at most `max_in_flight`
//!   unsettled deliveries; it receives nothing more until one is settled or
//!   dropped.
//! * **Leaving**: dropping a subscription ends its stream; deliveries it
//!   handed out stay valid (they can still be acked) and go back to the
//!   group when dropped unsettled, or after the ack timeout.
//!
//! # Broadcast mode
//!
//! Each subscriber receives every message published after it subscribed,
//! through a per-topic `tokio::sync::broadcast` channel of
//! [`MemoryTransportConfig::broadcast_capacity`] messages. A subscriber that
//! falls further behind loses the oldest messages, counted by
//! [`MemoryTransport::broadcast_dropped`]; publishers never wait.
//!
//! # Closing
//!
//! [`MemoryTransport::close`] ends every subscription's stream (it yields
//! `None`) and makes later `publish`/`subscribe` fail with `Closed`.
//! Dropping the transport handles does not close it: subscriptions keep the
//! backend alive.
//!
//! # Memory
//!
//! Topics and queue groups live as long as the transport: a group keeps
//! receiving every message of its topic even while nobody consumes it (like
//! a durable group on a broker), so do not create groups you will not
//! drain. [`MemoryTransport::depth`] shows what a group holds.
//!
//! # Concurrency
//!
//! There is no global lock on the hot path: the topic registry is read-locked
//! to find a topic, each topic and each group has its own mutex, a publish
//! batch takes each lock once, and consumers only touch their group's lock.
//! Times use `tokio::time::Instant`, so tests can pause the clock.

mod broadcast;
mod consumer;
mod group;
mod topic;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rustc_hash::FxHashMap;
use tokio::sync::Notify;

pub use super::QueueDepth;
use topic::Topic;

use crate::codec::DEFAULT_MAX_SIZE;
use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};
use crate::transport::{Capabilities, SubscribeMode, SubscribeOptions, Subscription, Transport};

/// Largest accepted [`MemoryTransportConfig::broadcast_capacity`].
pub const MAX_BROADCAST_CAPACITY: usize = 1 << 20;
/// Smallest accepted [`MemoryTransportConfig::ack_timeout`].
pub const MIN_ACK_TIMEOUT: Duration = Duration::from_millis(1);

/// Settings of a [`MemoryTransport`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryTransportConfig {
    /// Largest payload accepted, in bytes (default 4 MiB); larger → `TooLarge`.
    pub max_payload: usize,
    /// An unsettled delivery is handed back for redelivery after this long
    /// (default 30 s; at least [`MIN_ACK_TIMEOUT`]).
    pub ack_timeout: Duration,
    /// Messages buffered per topic for broadcast subscribers (default 1024;
    /// clamped to `1..=`[`MAX_BROADCAST_CAPACITY`]).
    pub broadcast_capacity: usize,
    /// Messages kept for a topic that has no queue group yet (default
    /// 100 000); past it, the oldest retained messages are trimmed.
    pub max_retained: usize,
}

impl Default for MemoryTransportConfig {
    fn default() -> Self {
        MemoryTransportConfig {
            max_payload: DEFAULT_MAX_SIZE,
            ack_timeout: Duration::from_secs(30),
            broadcast_capacity: 1024,
            max_retained: 100_000,
        }
    }
}

impl MemoryTransportConfig {
    /// Sets [`max_payload`](Self::max_payload).
    #[must_use]
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// Sets [`ack_timeout`](Self::ack_timeout).
    #[must_use]
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }

    /// Sets [`broadcast_capacity`](Self::broadcast_capacity).
    #[must_use]
    pub fn with_broadcast_capacity(mut self, messages: usize) -> Self {
        self.broadcast_capacity = messages;
        self
    }

    /// Sets [`max_retained`](Self::max_retained).
    #[must_use]
    pub fn with_max_retained(mut self, messages: usize) -> Self {
        self.max_retained = messages;
        self
    }

    /// The values actually used: out-of-range ones clamped.
    fn normalized(mut self) -> Self {
        self.ack_timeout = self.ack_timeout.max(MIN_ACK_TIMEOUT);
        self.broadcast_capacity = self.broadcast_capacity.clamp(1, MAX_BROADCAST_CAPACITY);
        self
    }
}

/// The in-process transport; see the [module docs](self) for its semantics.
///
/// Cheap to clone: clones share one backend.
#[derive(Clone)]
pub struct MemoryTransport {
    shared: Arc<Shared>,
}

/// The backend shared by clones, subscriptions and deliveries.
struct Shared {
    config: MemoryTransportConfig,
    topics: RwLock<FxHashMap<String, Arc<Topic>>>,
    closed: AtomicBool,
    /// Woken (all waiters) by [`MemoryTransport::close`].
    close: Notify,
    broadcast_dropped: AtomicU64,
    retained_dropped: AtomicU64,
}

impl Shared {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The topic `name`, created on first use.
    fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(t) = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Arc::clone(t);
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            topics
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(Topic::new(name))),
        )
    }

    fn existing_topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }
}

impl Default for MemoryTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let topics = self
            .shared
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("MemoryTransport")
            .field("config", &self.shared.config)
            .field("topics", &topics)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl MemoryTransport {
    /// A transport with the default [`MemoryTransportConfig`].
    pub fn new() -> Self {
        Self::with_config(MemoryTransportConfig::default())
    }

    /// A transport with `config` (out-of-range values are clamped, see the
    /// fields).
    pub fn with_config(config: MemoryTransportConfig) -> Self {
        MemoryTransport {
            shared: Arc::new(Shared {
                config: config.normalized(),
                topics: RwLock::new(FxHashMap::default()),
                closed: AtomicBool::new(false),
                close: Notify::new(),
                broadcast_dropped: AtomicU64::new(0),
                retained_dropped: AtomicU64::new(0),
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &MemoryTransportConfig {
        &self.shared.config
    }

    /// Closes the transport (all clones): every subscription's stream ends,
    /// later `publish`/`subscribe` fail with `Closed`. Idempotent.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.close.notify_waiters();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// How many messages of queue group `group` on `topic` are ready, in
    /// flight and delayed; `None` if the group does not exist.
    pub fn depth(&self, topic: &str, group: &str) -> Option<QueueDepth> {
        Some(self.shared.existing_topic(topic)?.find_group(group)?.depth())
    }

    /// How many messages `topic` retains for its first queue group (0 once
    /// it has one).
    pub fn retained(&self, topic: &str) -> usize {
        self.shared.existing_topic(topic).map_or(0, |t| t.retained())
    }

    /// How many messages retained for a topic's first queue group were
    /// trimmed because the backlog exceeded `max_retained` (oldest first).
    pub fn retained_dropped(&self) -> u64 {
        self.shared.retained_dropped.load(Ordering::Relaxed)
    }

    /// How many broadcast messages were lost by subscribers that fell behind.
    pub fn broadcast_dropped(&self) -> u64 {
        self.shared.broadcast_dropped.load(Ordering::Relaxed)
    }

    fn check_open(&self, op: &'static str) -> Result<()> {
        if self.is_closed() {
            return Err(Error::new(ErrorKind::Closed, "memory transport is closed").with_operation(op));
        }
        Ok(())
    }

    /// Publishes validated envelopes, all of one topic or not.
    fn publish_valid<E>(&self, envelopes: E)
    where
        E: AsRef<[Envelope]> + IntoIterator<Item = Envelope>,
    {
        let slice = envelopes.as_ref();
        let Some(first) = slice.first() else {
            return;
        };
        if !slice.iter().all(|e| e.topic == first.topic) {
            return self.publish_multi(envelopes.into_iter().collect());
        }
        let topic = self.shared.topic(&first.topic);
        let mut state = topic.lock();
        state.publish(
            &topic,
            envelopes,
            self.shared.config.max_retained,
            &self.shared.retained_dropped,
        );
    }

    /// A batch spanning several topics: every topic's lock is held (taken in
    /// name order) while room is checked and the batch published, so either
    /// all of it is published or none.
    fn publish_multi(&self, envelopes: Vec<Envelope>) {
        let mut names: Vec<String> = Vec::new();
        let mut slots = Vec::with_capacity(envelopes.len());
        {
            let mut index: FxHashMap<&str, usize> = FxHashMap::default();
            for e in &envelopes {
                let next = index.len();
                let slot = *index.entry(e.topic.as_str()).or_insert_with(|| {
                    names.push(e.topic.clone());
                    next
                });
                slots.push(slot);
            }
        }
        let mut parts: Vec<Vec<Envelope>> = names.iter().map(|_| Vec::new()).collect();
        for (e, slot) in envelopes.into_iter().zip(slots) {
            if let Some(part) = parts.get_mut(slot) {
                part.push(e);
            }
        }
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|&a, &b| names[a].cmp(&names[b]));
        let topics: Vec<Arc<Topic>> = order.iter().map(|&i| self.shared.topic(&names[i])).collect();
        let mut guards: Vec<_> = topics.iter().map(|t| t.lock()).collect();
        let max = self.shared.config.max_retained;
        for ((state, topic), &i) in guards.iter_mut().zip(&topics).zip(&order) {
            state.publish(
                topic,
                std::mem::take(&mut parts[i]),
                max,
                &self.shared.retained_dropped,
            );
        }
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::full("memory", self.shared.config.max_payload)
            .with_ack_wait(self.shared.config.ack_timeout);
        caps.durable = false;
        caps
    }

    async fn publish(&self, envelope: Envelope) -> Result<()> {
        const OP: &str = "memory.publish";
        self.check_open(OP)?;
        envelope
            .validate(self.shared.config.max_payload)
            .map_err(|e| e.with_operation(OP))?;
        self.publish_valid([envelope]);
        Ok(())
    }

    async fn publish_batch(&self, envelopes: Vec<Envelope>) -> Result<()> {
        const OP: &str = "memory.publish_batch";
        self.check_open(OP)?;
        super::check_batch(OP, &envelopes, self.shared.config.max_payload)?;
        self.publish_valid(envelopes);
        Ok(())
    }

    async fn subscribe(
        &self,
        topic: &str,
        mode: SubscribeMode,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        const OP: &str = "memory.subscribe";
        self.check_open(OP)?;
        super::check_subscribe(OP, topic, &mode, &options)?;
        let shared = Arc::clone(&self.shared);
        let t = self.shared.topic(topic);
        Ok(match mode {
            SubscribeMode::Queue { group } => {
                let group = t.group(&group, self.shared.config.ack_timeout);
                Subscription::new(consumer::stream(shared, group, options.max_in_flight))
            }
            SubscribeMode::Broadcast => {
                let rx = t.broadcast_receiver(self.shared.config.broadcast_capacity);
                Subscription::new(broadcast::stream(shared, topic.to_owned(), rx))
            }
        })
    }

    /// To the topics' broadcast receivers only: no group, no backlog.
    async fn broadcast(&self, envelopes: Vec<Envelope>) -> Result<()> {
        const OP: &str = "memory.broadcast";
        self.check_open(OP)?;
        super::check_batch(OP, &envelopes, self.shared.config.max_payload)?;
        for e in envelopes {
            self.shared.topic(&e.topic).send_broadcast(e);
        }
        Ok(())
    }

    async fn queue_depth(&self, topic: &str, group: &str) -> Result<Option<QueueDepth>> {
        crate::validate::topic(topic).map_err(|e| e.with_operation("memory.queue_depth"))?;
        crate::validate::group(group).map_err(|e| e.with_operation("memory.queue_depth"))?;
        Ok(self.depth(topic, group))
    }

    /// [`MemoryTransport::close`]: every clone's subscriptions end.
    async fn close(&self) -> Result<()> {
        MemoryTransport::close(self);
        Ok(())
    }
}
