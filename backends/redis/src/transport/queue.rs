//! Queue-mode subscriptions: one consumer of a stream's group, fed by a
//! reader task (blocking `XREADGROUP` on its own connection, plus claims of
//! due nacked and timed-out entries), bounded by `max_in_flight` permits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use multiagents_core::transport::DeadLetterHook;
use multiagents_core::{Envelope, Error, ErrorKind, Result, SubscribeOptions, Subscription};
use redis::Value;
use redis::aio::MultiplexedConnection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::acker::RedisAcker;
use super::burial;
use super::reply::{self, Counted, field};
use crate::connection::Conn;
use crate::error::map;
use crate::scripts;
use multiagents_core::kit::Batcher;

/// One consumer of one group: what the reader and the ackers share.
pub(crate) struct Group {
    pub(crate) conn: Conn,
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) stream: String,
    pub(crate) delayed: String,
    pub(crate) strikes: String,
    pub(crate) dlq: String,
    pub(crate) wire_max: usize,
    /// Told of each entry that strikes out, before it moves (`burial`).
    pub(crate) on_dead_letter: Option<DeadLetterHook>,
    /// Coalesces concurrent acks into one `XACK` (see `batch`).
    pub(crate) acks: Batcher<(String, bool)>,
}

/// A message read for the subscriber, not yet handed to it. Dropped
/// unreceived (the subscription went away), it goes back to the group
/// without a strike.
pub(crate) struct Pending {
    group: Arc<Group>,
    id: String,
    envelope: Option<Envelope>,
    count: u32,
    strikes: u32,
    permit: Option<OwnedSemaphorePermit>,
    /// When it was read (its ack timeout runs from about then).
    read_at: Instant,
}

impl Pending {
    fn into_delivery(mut self) -> multiagents_core::Delivery {
        let envelope = self
            .envelope
            .take()
            .unwrap_or_else(|| Envelope::new("", "", Vec::new()));
        let acker = RedisAcker::new(
            self.group.clone(),
            std::mem::take(&mut self.id),
            self.count,
            self.strikes,
            self.permit.take(),
        );
        multiagents_core::Delivery::new(envelope, self.count, Box::new(acker)).received_at(self.read_at)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.envelope.is_some() {
            super::acker::hand_back(self.group.clone(), std::mem::take(&mut self.id), false);
        }
    }
}

/// Creates the group if needed (at the stream's start), then starts the
/// reader task.
pub(crate) async fn subscribe(
    conn: &Conn,
    topic: &str,
    group: &str,
    options: SubscribeOptions,
    wire_max: usize,
) -> Result<Subscription> {
    let max_in_flight = options.max_in_flight;
    let keys = conn.keys();
    let g = Arc::new(Group {
        conn: conn.clone(),
        topic: topic.to_string(),
        group: group.to_string(),
        consumer: format!("c-{}", uuid::Uuid::now_v7().simple()),
        stream: keys.stream(topic),
        delayed: keys.delayed(topic, group),
        strikes: keys.strikes(topic, group),
        dlq: keys.dead_letters(topic),
        wire_max,
        on_dead_letter: options.on_dead_letter,
        acks: ack_batcher(
            conn.clone(),
            keys.stream(topic),
            group.to_string(),
            keys.strikes(topic, group),
        ),
    });
    create_group(&g).await?;
    let (tx, rx) = mpsc::channel(max_in_flight.clamp(1, 4096));
    let permits = Arc::new(Semaphore::new(max_in_flight.min(Semaphore::MAX_PERMITS)));
    g.conn.clone().spawn(Reader::new(g, tx, permits).run());
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item.map(Pending::into_delivery), rx))
    });
    Ok(Subscription::new(stream))
}

/// Acks of one consumer: `XACK stream group id…` (and `HDEL` of the
/// strikes of those that had any), one round trip per batch.
fn ack_batcher(conn: Conn, stream: String, group: String, strikes: String) -> Batcher<(String, bool)> {
    Batcher::start("redis.ack", 1024, 4, move |items: Vec<(String, bool)>| {
        let (conn, stream, group, strikes) = (conn.clone(), stream.clone(), group.clone(), strikes.clone());
        async move {
            let mut pipe = redis::pipe();
            let xack = pipe.cmd("XACK").arg(&stream).arg(&group);
            for (id, _) in &items {
                xack.arg(id);
            }
            xack.ignore();
            let struck: Vec<&String> = items.iter().filter(|(_, s)| *s).map(|(id, _)| id).collect();
            if !struck.is_empty() {
                pipe.cmd("HDEL").arg(&strikes).arg(struck).ignore();
            }
            pipe.query_async::<()>(&mut conn.cmd()).await.map_err(|e| {
                map("redis.ack", e)
                    .with_context("stream", &stream)
                    .with_context("group", &group)
            })
        }
    })
}

async fn create_group(g: &Group) -> Result<()> {
    let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&g.stream)
        .arg(&g.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut g.conn.cmd())
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(map("redis.subscribe", e)
            .with_context("topic", &g.topic)
            .with_context("group", &g.group)
            .with_context("stream", &g.stream)),
    }
}

struct Reader {
    g: Arc<Group>,
    tx: mpsc::Sender<Result<Pending>>,
    permits: Arc<Semaphore>,
    conn: Option<MultiplexedConnection>,
    last_claim: Option<Instant>,
    last_timeout_pass: Instant,
    backoff: Duration,
    reported: bool,
}

impl Reader {
    fn new(g: Arc<Group>, tx: mpsc::Sender<Result<Pending>>, permits: Arc<Semaphore>) -> Self {
        Reader {
            g,
            tx,
            permits,
            conn: None,
            last_claim: None,
            last_timeout_pass: Instant::now(),
            backoff: Duration::from_millis(100),
            reported: false,
        }
    }

    async fn run(mut self) {
        let config = self.g.conn.config().clone();
        let timeout_every = (config.ack_timeout / 4)
            .min(Duration::from_secs(1))
            .max(config.claim_interval);
        // Cloned once: the select on a read cannot borrow `self.g` while
        // `self.read` holds `self`.
        let closed = self.g.conn.closed().clone();
        loop {
            let first = tokio::select! {
                p = self.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = self.tx.closed() => break,
                () = self.g.conn.closed().cancelled() => break,
            };
            // One permit per message read; taken together, split per delivery.
            let mut permits = first;
            let more = self
                .permits
                .available_permits()
                .min(config.read_batch.saturating_sub(1));
            if more > 0
                && let Ok(p) = self.permits.clone().try_acquire_many_owned(more as u32)
            {
                permits.merge(p);
            }
            if self
                .last_claim
                .is_none_or(|t| t.elapsed() >= config.claim_interval)
            {
                self.last_claim = Some(Instant::now());
                let idle = if self.last_timeout_pass.elapsed() >= timeout_every {
                    self.last_timeout_pass = Instant::now();
                    config.ack_timeout.as_millis().max(1) as u64
                } else {
                    0
                };
                match self
                    .claim(permits.num_permits(), idle, config.max_deliveries)
                    .await
                {
                    Ok(claimed) if !claimed.is_empty() => {
                        if !self.forward(claimed, &mut permits).await {
                            break;
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if !self.failed(e).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            // A close does not wait out a long `block`: entries the server
            // handed over meanwhile stay pending under this consumer, for
            // another's claim after the ack timeout (nothing is lost).
            let read = tokio::select! {
                read = self.read(permits.num_permits(), config.block) => read,
                () = closed.cancelled() => break,
            };
            match read {
                Ok(read) => {
                    self.ok();
                    if !self.forward(read, &mut permits).await {
                        break;
                    }
                }
                Err(e) if e.context_value("redis_error") == Some("NOGROUP") => {
                    // The stream or group vanished (flushed, or a server
                    // restarted without persistence): make it again.
                    tracing::warn!(stream = %self.g.stream, group = %self.g.group, "consumer group missing; creating it again");
                    if let Err(e) = create_group(&self.g).await
                        && !self.failed(e).await
                    {
                        break;
                    }
                }
                Err(e) => {
                    if !self.failed(e).await {
                        break;
                    }
                }
            }
        }
        self.leave().await;
    }

    fn ok(&mut self) {
        if self.reported {
            tracing::info!(stream = %self.g.stream, group = %self.g.group, "Redis reachable again; consuming");
        }
        self.reported = false;
        self.backoff = Duration::from_millis(100);
    }

    /// Reports an error (once per outage) to the subscriber, drops the
    /// blocking connection and backs off. `false` when the subscriber left.
    async fn failed(&mut self, e: Error) -> bool {
        self.conn = None;
        if !self.reported {
            tracing::warn!(error = %e, stream = %self.g.stream, group = %self.g.group, "Redis read failed; retrying");
            self.reported = true;
            if self.tx.send(Err(e)).await.is_err() {
                return false;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(self.backoff) => {}
            _ = self.tx.closed() => return false,
            () = self.g.conn.closed().cancelled() => return false,
        }
        self.backoff = (self.backoff * 2).min(Duration::from_secs(2));
        true
    }

    /// Hands entries to the subscriber, one permit each. `false` when the
    /// subscriber left (the entries go back to the group).
    async fn forward(&mut self, entries: Vec<Counted>, permits: &mut OwnedSemaphorePermit) -> bool {
        let read_at = Instant::now();
        for ((id, fields), count, strikes) in entries {
            let decoded = match field(&fields, "e") {
                Some(wire) => Envelope::from_wire(wire, self.g.wire_max),
                None => Err(Error::new(ErrorKind::Codec, "stream entry has no field \"e\"")),
            };
            let item = match decoded {
                Ok(envelope) => Ok(Pending {
                    group: self.g.clone(),
                    id,
                    envelope: Some(envelope),
                    count,
                    strikes,
                    permit: permits.split(1),
                    read_at,
                }),
                Err(e) => Err(burial::bury_unreadable(&self.g, id, fields, e).await),
            };
            if self.tx.send(item).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn dedicated(&mut self) -> Result<MultiplexedConnection> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        let c = self.g.conn.dedicated().await?;
        self.conn = Some(c.clone());
        Ok(c)
    }

    async fn read(&mut self, count: usize, block: Duration) -> Result<Vec<Counted>> {
        const OP: &str = "redis.subscribe.read";
        let mut con = self.dedicated().await?;
        let g = &self.g;
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&g.group)
            .arg(&g.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(&g.stream)
            .arg(">")
            .query_async(&mut con)
            .await
            .map_err(|e| {
                map(OP, e)
                    .with_context("stream", &g.stream)
                    .with_context("group", &g.group)
            })?;
        reply::read_group(OP, reply)
    }

    async fn claim(&self, count: usize, idle_ms: u64, max_deliveries: u32) -> Result<Vec<Counted>> {
        const OP: &str = "redis.subscribe.claim";
        let g = &self.g;
        let reply: Value = scripts::CLAIM
            .key(&g.stream)
            .key(&g.delayed)
            .key(&g.strikes)
            .key(&g.dlq)
            .arg(&g.group)
            .arg(&g.consumer)
            .arg(count)
            .arg(idle_ms)
            .arg(max_deliveries)
            .arg(if g.on_dead_letter.is_some() { "1" } else { "0" })
            .invoke_async(&mut g.conn.cmd())
            .await
            .map_err(|e| {
                map(OP, e)
                    .with_context("stream", &g.stream)
                    .with_context("group", &g.group)
            })?;
        let (dead, claimed, doomed) = reply::claimed(OP, reply)?;
        if let Some(hook) = &g.on_dead_letter {
            // In the background: a slow hook must not hold up the entries
            // just claimed, whose idle clocks run.
            for entry in doomed {
                let (g, hook) = (self.g.clone(), hook.clone());
                self.g
                    .conn
                    .spawn(async move { burial::bury_struck(&g, &hook, entry).await });
            }
        }
        if dead > 0 {
            tracing::warn!(topic = %g.topic, group = %g.group, dead, dlq = %g.dlq, "messages dead-lettered after too many unsettled deliveries");
            metrics::counter!("multiagents_redis_dead_letters_total", "topic" => g.topic.clone())
                .increment(dead);
        }
        Ok(claimed)
    }

    async fn leave(&self) {
        let g = &self.g;
        let left: redis::RedisResult<i64> = scripts::LEAVE
            .key(&g.stream)
            .arg(&g.group)
            .arg(&g.consumer)
            .invoke_async(&mut g.conn.cmd())
            .await;
        if let Err(e) = left {
            tracing::debug!(error = %e, consumer = %g.consumer, "could not remove a consumer that left");
        }
    }
}
