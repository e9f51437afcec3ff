//! The messaging contract: [`Transport`], its [`Subscription`]s and
//! [`Delivery`]s, and the in-memory implementation ([`MemoryTransport`]).
//!
//! # Delivery modes
//!
//! * **Queue** ([`SubscribeMode::Queue`]): competing consumers in a named
//!   group. Every group on a topic receives every message; within a group each
//!   message goes to one consumer at a time. **At-least-once**: a message is
//!   delivered again after a [`Delivery::nack`], after its delivery is dropped
//!   unsettled or its consumer dies, and after the backend's ack timeout.
//!   Nothing on the queue path is dropped silently. Commands and results of
//!   the orchestrator travel here.
//! * **Broadcast** ([`SubscribeMode::Broadcast`]): every live subscriber gets
//!   every message published after it subscribed. **At-most-once**: a
//!   subscriber that falls behind loses messages (counted, never blocking the
//!   publisher). Events and monitoring travel here.

mod dead_letter;
mod delivery;
pub mod memory;

use std::sync::Arc;

use async_trait::async_trait;

pub use dead_letter::{DeadLetter, DeadLetterHook, HookFuture};
pub use delivery::{Acker, Delivery, Subscription};
pub use memory::{MemoryTransport, MemoryTransportConfig};

use crate::envelope::Envelope;
use crate::error::{Error, ErrorKind, Result};

/// How a subscription receives messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SubscribeMode {
    /// Competing consumers in `group`; at-least-once with ack/nack.
    Queue {
        /// The consumer group name (same rules as topic names).
        group: String,
    },
    /// Every subscriber receives every message; at-most-once, no ack.
    Broadcast,
}

impl SubscribeMode {
    /// Queue mode in `group`.
    pub fn queue(group: impl Into<String>) -> Self {
        SubscribeMode::Queue { group: group.into() }
    }
}

/// Per-subscription settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Queue mode: the most deliveries this subscription holds unsettled at
    /// once. When reached, the subscription receives nothing more until one
    /// is acked or nacked: that is the backpressure bound. Default 256.
    pub max_in_flight: usize,
    /// Queue mode: told of each message a backend dead-letters for strikes,
    /// before the original is settled (see [`DeadLetterHook`]). Default
    /// none. Backends without dead letters (the in-memory one) never call it.
    pub on_dead_letter: Option<DeadLetterHook>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            max_in_flight: 256,
            on_dead_letter: None,
        }
    }
}

impl SubscribeOptions {
    /// Options with the given in-flight bound.
    pub fn max_in_flight(max_in_flight: usize) -> Self {
        SubscribeOptions {
            max_in_flight,
            ..SubscribeOptions::default()
        }
    }

    /// These options with `hook` told of dead letters.
    pub fn with_dead_letter_hook(mut self, hook: DeadLetterHook) -> Self {
        self.on_dead_letter = Some(hook);
        self
    }
}

/// How many messages of one queue group are in each state
/// ([`Transport::queue_depth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct QueueDepth {
    /// Waiting to be delivered (including messages handed back for
    /// redelivery): the group's lag.
    pub ready: usize,
    /// Delivered and not yet settled.
    pub in_flight: usize,
    /// Nacked with a delay that has not passed yet (backends that cannot
    /// tell them apart count them in `in_flight`).
    pub delayed: usize,
}

impl QueueDepth {
    /// Counts of each state.
    pub fn new(ready: usize, in_flight: usize, delayed: usize) -> Self {
        QueueDepth {
            ready,
            in_flight,
            delayed,
        }
    }

    /// Every message the group has not settled yet.
    pub fn total(&self) -> usize {
        self.ready + self.in_flight + self.delayed
    }
}

/// What a transport supports; the conformance suite skips (visibly) what a
/// backend declares it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Backend name for messages and metrics (`"memory"`, `"redis"`, …).
    pub name: &'static str,
    /// Queue mode with consumer groups.
    pub queue: bool,
    /// Broadcast mode.
    pub broadcast: bool,
    /// `nack(delay)` honours the delay (otherwise redelivery is immediate).
    pub nack_delay: bool,
    /// Unsettled deliveries are redelivered after the ack timeout.
    pub ack_timeout: bool,
    /// That ack timeout, when known: a handler that may run longer calls
    /// [`Delivery::progress`] more often than this to keep its delivery.
    pub ack_wait: Option<std::time::Duration>,
    /// Accepted messages outlive the process that published them (a
    /// broker). The in-memory transport's die with its process. (The
    /// orchestrator treats both alike; this is for users and tools.)
    pub durable: bool,
    /// [`Transport::broadcast`] reaches broadcast subscribers only (no queue
    /// group, no retention), rather than the default's `publish_batch`.
    pub broadcast_only: bool,
    /// Messages of one key reach a lone consumer of a group in publish order.
    pub ordered_per_key: bool,
    /// Largest payload the backend accepts, in bytes.
    pub max_payload: usize,
    /// `publish_batch` is one round trip (pipelined / batched).
    pub batch_publish: bool,
    /// [`Transport::queue_depth`] answers for an existing group.
    pub queue_depth: bool,
    /// A consumer joining a group may take over work another consumer of
    /// the group holds unsettled, which is then delivered to both (a
    /// duplicate, never a loss). Kafka: a rebalance moves whole partitions,
    /// and the new owner reads from the committed offset. Its redeliveries
    /// may also show `delivery_count` 1 (Kafka keeps no per-message count).
    pub moves_work_on_join: bool,
    /// Consumers are group members kept alive by heartbeats: the unsettled
    /// work of one that dies (stops heartbeating) or leaves goes to the
    /// group's other members, without a per-message ack timeout (Kafka's
    /// session timeout). The orchestrator accepts this in place of
    /// [`ack_timeout`](Self::ack_timeout).
    pub group_liveness: bool,
    /// With [`group_liveness`](Self::group_liveness), when known: how long
    /// after a member's last sign of life its unsettled work is still its
    /// own (Kafka: the session timeout less a heartbeat interval, since the
    /// last heartbeat may precede it). A handler keeps its hold with
    /// [`Delivery::progress`], which fails once the work moved.
    pub group_hold: Option<std::time::Duration>,
}

impl Capabilities {
    /// Everything supported (durable too): a backend's starting point,
    /// which then turns off what it lacks (the struct is `non_exhaustive`,
    /// so other crates cannot build it literally).
    pub fn full(name: &'static str, max_payload: usize) -> Self {
        Capabilities {
            name,
            queue: true,
            broadcast: true,
            nack_delay: true,
            ack_timeout: true,
            ack_wait: None,
            durable: true,
            broadcast_only: true,
            ordered_per_key: true,
            max_payload,
            batch_publish: true,
            queue_depth: true,
            moves_work_on_join: false,
            group_liveness: false,
            group_hold: None,
        }
    }
}

impl Capabilities {
    /// These capabilities with the ack timeout's length ([`ack_wait`](Self::ack_wait)).
    #[must_use]
    pub fn with_ack_wait(mut self, ack_wait: std::time::Duration) -> Self {
        self.ack_wait = Some(ack_wait);
        self
    }

    /// How long a delivery is this consumer's without
    /// [`Delivery::progress`]: the ack timeout, or else the group hold.
    pub fn hold(&self) -> Option<std::time::Duration> {
        self.ack_wait.or(self.group_hold)
    }
}

/// The argument checks of [`Transport::subscribe`] every backend makes, in
/// one place: topic and group names, and `max_in_flight >= 1`. Errors are
/// `InvalidInput` for operation `op`, naming the value and the topic.
pub fn check_subscribe(
    op: &'static str,
    topic: &str,
    mode: &SubscribeMode,
    options: &SubscribeOptions,
) -> Result<()> {
    crate::validate::topic(topic).map_err(|e| e.with_operation(op))?;
    if let SubscribeMode::Queue { group } = mode {
        crate::validate::group(group).map_err(|e| e.with_operation(op).with_context("topic", topic))?;
    }
    if options.max_in_flight == 0 {
        return Err(
            Error::new(ErrorKind::InvalidInput, "max_in_flight must be at least 1")
                .with_operation(op)
                .with_context("max_in_flight", 0)
                .with_context("topic", topic),
        );
    }
    Ok(())
}

/// The checks of [`Transport::publish_batch`]: every envelope is valid
/// ([`Envelope::validate`]) before anything is published; an error names
/// the envelope's `index`.
pub fn check_batch(op: &'static str, envelopes: &[Envelope], max_payload: usize) -> Result<()> {
    for (i, e) in envelopes.iter().enumerate() {
        e.validate(max_payload)
            .map_err(|e| e.with_operation(op).with_context("index", i))?;
    }
    Ok(())
}

/// Publish/subscribe over a backend. Object safe: share as `Arc<dyn Transport>`.
///
/// Implementations validate every argument and return typed errors
/// ([`crate::ErrorKind`]); none panics on bad input.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// Publishes one envelope to `envelope.topic`.
    ///
    /// # Behavior
    /// - Invalid topic or key → `InvalidInput` naming the value; payload over
    ///   the backend's maximum → `TooLarge`. Nothing is published then.
    /// - When `Ok` returns, the message is accepted: every queue group on the
    ///   topic will receive it (at least once), including a group that has
    ///   not subscribed yet if the backend retains messages (it says so in
    ///   its docs).
    /// - Envelopes with the same key published by one caller, one after
    ///   another, are delivered in that order to a group's lone consumer.
    /// - Broadcast subscribers present at publish time receive it at most once.
    async fn publish(&self, envelope: Envelope) -> Result<()>;

    /// Publishes many envelopes, in order, in one round trip where the
    /// backend allows it.
    ///
    /// # Behavior
    /// - All envelopes are validated first; one invalid envelope fails the
    ///   whole batch and nothing is published.
    /// - Otherwise the same rules as [`publish`](Self::publish) apply to each,
    ///   in order. An empty batch is a no-op.
    async fn publish_batch(&self, envelopes: Vec<Envelope>) -> Result<()>;

    /// Subscribes to `topic`.
    ///
    /// # Behavior
    /// - Invalid topic or group → `InvalidInput`; `max_in_flight == 0` →
    ///   `InvalidInput`; a mode the backend lacks → `Unsupported`.
    /// - Queue mode: see the module docs. A subscription never holds more
    ///   than `options.max_in_flight` unsettled deliveries.
    /// - Dropping the subscription is a consumer leaving: its unsettled
    ///   deliveries become available to the group's other consumers (at once
    ///   or after the ack timeout, per backend).
    /// - Broadcast: messages published after this call returns are received.
    async fn subscribe(
        &self,
        topic: &str,
        mode: SubscribeMode,
        options: SubscribeOptions,
    ) -> Result<Subscription>;

    /// Publishes `envelopes` to the broadcast subscribers of their topics
    /// only: for messages nobody consumes from a queue (lifecycle events).
    ///
    /// # Behavior
    /// - The same validation as [`publish_batch`](Self::publish_batch);
    ///   one invalid envelope fails the batch and nothing is sent.
    /// - Broadcast subscribers present now receive each, at most once, in
    ///   order. No queue group receives them, and nothing is retained for a
    ///   group that subscribes later. An empty batch is a no-op.
    /// - The default publishes them like [`publish_batch`](Self::publish_batch)
    ///   (queue groups get them too): backends override it with a cheaper
    ///   path (no stream append, no backlog).
    async fn broadcast(&self, envelopes: Vec<Envelope>) -> Result<()> {
        self.publish_batch(envelopes).await
    }

    /// How many messages of `topic` queue group `group` holds in each
    /// state: for metrics, operators and autoscaling, not for control (the
    /// figures may be a moment old).
    ///
    /// # Behavior
    /// - `Ok(None)` when the group does not exist on the topic, or the
    ///   backend cannot tell (the default).
    /// - Invalid topic or group → `InvalidInput`.
    async fn queue_depth(&self, topic: &str, group: &str) -> Result<Option<QueueDepth>> {
        let _ = (topic, group);
        Ok(None)
    }

    /// Releases what the transport holds (connections, background tasks).
    /// Called once by the owner that opened it, after its last use
    /// (`Runtime::shutdown` for the backends it opened from URLs).
    ///
    /// # Behavior
    /// - Afterwards `publish` and `subscribe` may fail with `Closed`, and
    ///   open subscriptions may end. Calling it again is a no-op.
    /// - The default does nothing (a transport that holds nothing needing
    ///   release, or that releases it on drop).
    async fn close(&self) -> Result<()> {
        Ok(())
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn publish(&self, envelope: Envelope) -> Result<()> {
        (**self).publish(envelope).await
    }
    async fn publish_batch(&self, envelopes: Vec<Envelope>) -> Result<()> {
        (**self).publish_batch(envelopes).await
    }
    async fn subscribe(
        &self,
        topic: &str,
        mode: SubscribeMode,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        (**self).subscribe(topic, mode, options).await
    }
    async fn broadcast(&self, envelopes: Vec<Envelope>) -> Result<()> {
        (**self).broadcast(envelopes).await
    }
    async fn queue_depth(&self, topic: &str, group: &str) -> Result<Option<QueueDepth>> {
        (**self).queue_depth(topic, group).await
    }
    async fn close(&self) -> Result<()> {
        (**self).close().await
    }
}
