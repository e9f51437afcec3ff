//! [`RedisTransport`]: the [`Transport`] on Redis.
//!
//! * **Queue mode** — Streams and consumer groups. A topic is the stream
//!   `<prefix>:q:<topic>`; publishing is a pipeline of `XADD` (capped at
//!   [`max_retained`](crate::RedisConfig::max_retained) while no group
//!   reads the stream) and `PUBLISH` per message, one round trip per batch;
//!   concurrent publishes share a round trip. A subscription is one consumer of the group: a task reads with blocking
//!   `XREADGROUP` on a connection of its own, never holding more than
//!   `max_in_flight` unsettled deliveries, and acks with `XACK`. A group is
//!   created at the stream's start (`0`), so it receives what is retained.
//! * **Nack** moves the entry to the group's delayed set (due time by the
//!   server's clock); consumers claim due entries (`XCLAIM`) between reads.
//!   Entries other consumers have held past the ack timeout are claimed the
//!   same way, consumer by consumer (`XPENDING … IDLE`), rather than with
//!   `XAUTOCLAIM`, which would also take nacked entries before their delay.
//! * **Progress** ([`Delivery::progress`](multiagents_core::Delivery::progress))
//!   re-claims the entry for its own consumer (`touch.lua`): its idle time
//!   starts again, so a handler that outlives the ack timeout keeps it.
//! * **Dead letters** — a message whose deliveries end unsettled
//!   [`max_deliveries`](crate::RedisConfig::max_deliveries) times (crash,
//!   hang, drop) moves to `<prefix>:dlq:<topic>`
//!   ([`RedisTransport::dead_letters`]); so does an entry that is not an
//!   envelope.
//! * **Broadcast mode** — Pub/Sub on `<prefix>:b:<topic>`: every
//!   subscriber connected at publish time, at most once.
//! * **Depth** ([`Transport::queue_depth`]) — one script (`depth.lua`),
//!   one round trip: `ready` is the group's lag (`XINFO GROUPS`) plus the
//!   handed-back entries that are due but not claimed yet; `in_flight` is
//!   its pending list minus what `~delayed` holds (it includes entries a
//!   subscription has read but its consumer not yet received, at most
//!   `max_in_flight` per subscription, and those of a crashed consumer
//!   until they are claimed after the ack timeout); `delayed` is what
//!   `~delayed` holds whose due time (server clock) has not come. Redis
//!   7.0's lag still counts entries trimmed unread (`stream_max_len`) once
//!   the group has read: the script bounds it by the stream's length. When
//!   the server cannot tell the lag (an `XDEL` past the group's position,
//!   by something else: this crate never deletes entries) the script counts
//!   the entries after the group's last delivered one, a page at a time.
//! * **Trimming** — every [`trim_interval`](crate::RedisConfig::trim_interval)
//!   each stream this process reads is trimmed below the oldest entry any
//!   group still needs.

mod acker;
mod broadcast;
mod burial;
mod publish;
mod queue;
mod reply;
mod trim;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use multiagents_core::kit::Batcher;
pub use multiagents_core::transport::DeadLetter;
use multiagents_core::transport::{Capabilities, QueueDepth, check_batch, check_subscribe};
use multiagents_core::{
    Envelope, Result, SubscribeMode, SubscribeOptions, Subscription, Transport, validate,
};
use redis::Value;

use crate::config::RedisConfig;
use crate::connection::Conn;
use crate::error::map;
use crate::scripts;
use publish::{Publisher, Wire};

/// The transport on Redis; see the [module docs](self). Cheap to clone
/// (clones share connections and the trim task).
#[derive(Clone)]
pub struct RedisTransport {
    conn: Conn,
    trim: Arc<trim::Trimmer>,
    publisher: Arc<Batcher<Vec<Wire>>>,
    streams: Arc<Publisher>,
}

impl fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTransport")
            .field("config", self.conn.config())
            .finish()
    }
}

impl RedisTransport {
    /// Connects with the defaults of [`RedisConfig::new`], overridden by the
    /// options in `url`'s query ([`RedisConfig::from_url`]).
    ///
    /// # Errors
    /// `Config` for a bad URL; `Unavailable` when the server cannot be
    /// reached after the configured attempts; `PermissionDenied` for
    /// refused credentials. Messages show the URL without its password.
    pub async fn connect(url: &str) -> Result<RedisTransport> {
        Self::with_config(RedisConfig::from_url(url)?).await
    }

    /// Connects with `config`; errors as [`connect`](Self::connect).
    pub async fn with_config(config: RedisConfig) -> Result<RedisTransport> {
        let conn = Conn::open(config).await?;
        let trim = trim::Trimmer::start(conn.clone());
        let streams = Arc::new(Publisher::new(conn.clone()));
        let p = streams.clone();
        // Concurrent publishes share one round trip (see `batch`).
        let publisher = Batcher::start("redis.publish", 64, 4, move |batches: Vec<Vec<Wire>>| {
            let p = p.clone();
            async move { p.publish(batches.into_iter().flatten().collect()).await }
        });
        Ok(RedisTransport {
            conn,
            trim,
            publisher: Arc::new(publisher),
            streams,
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &RedisConfig {
        self.conn.config()
    }

    /// Up to `count` dead letters of `topic`, oldest first.
    ///
    /// # Errors
    /// `InvalidInput` for a bad topic; `Unavailable` when Redis cannot be
    /// reached.
    pub async fn dead_letters(&self, topic: &str, count: usize) -> Result<Vec<DeadLetter>> {
        const OP: &str = "redis.dead_letters";
        validate::topic(topic).map_err(|e| e.with_operation(OP))?;
        let reply: Value = redis::cmd("XRANGE")
            .arg(self.conn.keys().dead_letters(topic))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut self.conn.cmd())
            .await
            .map_err(|e| map(OP, e).with_context("topic", topic))?;
        let max = self.wire_max();
        reply::entries(OP, reply)?
            .into_iter()
            .map(|(id, fields)| {
                let text = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default()
                };
                let envelope = fields
                    .iter()
                    .find(|(k, _)| k == "e")
                    .and_then(|(_, v)| Envelope::from_wire(v, max).ok());
                Ok(DeadLetter::new(
                    id,
                    text("group"),
                    text("id"),
                    text("deliveries").parse().unwrap_or(0),
                    text("reason"),
                    envelope,
                ))
            })
            .collect()
    }

    /// Largest wire form accepted: the payload limit plus room for headers.
    fn wire_max(&self) -> usize {
        self.conn.config().max_payload.saturating_add(1 << 20)
    }

    async fn publish_valid(&self, envelopes: &[Envelope], op: &'static str) -> Result<()> {
        let keys = self.conn.keys();
        let mut wires: Vec<Wire> = Vec::with_capacity(envelopes.len());
        for e in envelopes {
            // Batches are mostly of one topic: share its key names.
            let (stream, channel) = match wires.last() {
                Some(w) if envelopes[wires.len() - 1].topic == e.topic => {
                    (w.stream.clone(), w.channel.clone())
                }
                _ => (keys.stream(&e.topic).into(), keys.channel(&e.topic).into()),
            };
            let bytes = e.to_wire().map_err(|e| e.with_operation(op))?;
            wires.push(Wire {
                stream,
                channel,
                bytes,
            });
        }
        self.publisher.submit(wires).await.map_err(|e| {
            let topic = envelopes.first().map(|e| e.topic.as_str()).unwrap_or_default();
            e.with_context("topic", topic)
        })
    }
}

#[async_trait]
impl Transport for RedisTransport {
    fn capabilities(&self) -> Capabilities {
        Capabilities::full("redis", self.conn.config().max_payload)
            .with_ack_wait(self.conn.config().ack_timeout)
    }

    async fn publish(&self, envelope: Envelope) -> Result<()> {
        const OP: &str = "redis.publish";
        envelope
            .validate(self.conn.config().max_payload)
            .map_err(|e| e.with_operation(OP))?;
        self.conn.check_open(OP)?;
        self.publish_valid(std::slice::from_ref(&envelope), OP).await
    }

    async fn publish_batch(&self, envelopes: Vec<Envelope>) -> Result<()> {
        const OP: &str = "redis.publish_batch";
        check_batch(OP, &envelopes, self.conn.config().max_payload)?;
        self.conn.check_open(OP)?;
        if envelopes.is_empty() {
            return Ok(());
        }
        self.publish_valid(&envelopes, OP).await
    }

    /// `PUBLISH` only (no stream append), pipelined: one round trip. The
    /// envelopes of one call for one topic go in as few `PUBLISH`es as
    /// their size allows ([`Envelope::pack`]).
    async fn broadcast(&self, envelopes: Vec<Envelope>) -> Result<()> {
        const OP: &str = "redis.broadcast";
        check_batch(OP, &envelopes, self.conn.config().max_payload)?;
        self.conn.check_open(OP)?;
        if envelopes.is_empty() {
            return Ok(());
        }
        let keys = self.conn.keys();
        let mut pipe = redis::pipe();
        for (first, bytes) in Envelope::pack(&envelopes, self.wire_max()).map_err(|e| e.with_operation(OP))? {
            pipe.cmd("PUBLISH")
                .arg(keys.channel(&first.topic))
                .arg(bytes)
                .ignore();
        }
        let sent: redis::RedisResult<()> = pipe.query_async(&mut self.conn.cmd()).await;
        sent.map_err(|err| map(OP, err).with_context("topic", &envelopes[0].topic))
    }

    async fn subscribe(
        &self,
        topic: &str,
        mode: SubscribeMode,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        const OP: &str = "redis.subscribe";
        check_subscribe(OP, topic, &mode, &options)?;
        self.conn.check_open(OP)?;
        match mode {
            SubscribeMode::Queue { group } => {
                let sub = queue::subscribe(&self.conn, topic, &group, options, self.wire_max()).await?;
                self.streams.grouped(&self.conn.keys().stream(topic));
                self.trim.watch(self.conn.keys().stream(topic));
                Ok(sub)
            }
            SubscribeMode::Broadcast => broadcast::subscribe(&self.conn, topic, self.wire_max()).await,
        }
    }

    /// One script (`depth.lua`), one round trip: a consistent snapshot of
    /// the group's stream, pending list and delayed set. `ready` = the lag
    /// plus handed-back entries that are due, `in_flight` = the pending list
    /// less what `~delayed` holds, `delayed` = what it holds that is not due
    /// yet (server clock). `None` when the stream or the group does not
    /// exist.
    async fn queue_depth(&self, topic: &str, group: &str) -> Result<Option<QueueDepth>> {
        const OP: &str = "redis.queue_depth";
        validate::topic(topic).map_err(|e| e.with_operation(OP))?;
        validate::group(group).map_err(|e| e.with_operation(OP))?;
        self.conn.check_open(OP)?;
        let keys = self.conn.keys();
        let figures: Value = scripts::DEPTH
            .key(keys.stream(topic))
            .key(keys.delayed(topic, group))
            .arg(group)
            .invoke_async(&mut self.conn.cmd())
            .await
            .map_err(|e| {
                map(OP, e)
                    .with_context("topic", topic)
                    .with_context("group", group)
            })?;
        reply::depth(OP, figures).map_err(|e| e.with_context("topic", topic).with_context("group", group))
    }

    /// Ends the trim task, the queue readers and the Pub/Sub pumps (open
    /// subscriptions end); later calls (by any clone) fail with `Closed`.
    async fn close(&self) -> Result<()> {
        self.conn.close().await;
        Ok(())
    }
}
