//! Asking another instance's writer: a write for a partition this
//! instance does not own is sent to the requests topic, and its answer read
//! from this instance's partition of the replies topic.
//!
//! The answer names the changelog offset of the write, and the asker
//! waits until its own view has read that far before returning, so its
//! next `get` sees the write (read-your-writes across the forward).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use multiagents_core::{Error, ErrorKind, Result};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::oneshot;

use super::Core;
use super::decide::{Done, Write};
use super::requests::{Reply, Request};

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// The asking side of forwarded writes.
pub(crate) struct Remote {
    core: Arc<Core>,
    member: String,
    reply_partition: i32,
    next: AtomicU64,
    waiting: Waiting,
}

impl Remote {
    /// Fails every write waiting for an answer (the store is closing).
    pub(crate) fn abandon(&self) {
        if let Ok(mut w) = self.waiting.lock() {
            w.clear();
        }
    }

    /// Starts reading this member's replies.
    ///
    /// # Errors
    /// Creating or assigning the reader.
    pub(crate) fn start(core: &Arc<Core>, member: &str) -> Result<Remote> {
        let reply_partition = super::record::partition_of(member, core.partitions);
        let consumer = crate::closing::Closing::new(crate::client::plain_consumer(&core.config)?);
        let mut list = TopicPartitionList::new();
        // From the beginning (the topic keeps an hour): a reader placed at
        // the end could miss a reply produced before the end was resolved.
        list.add_partition_offset(&core.replies, reply_partition, Offset::Beginning)
            .map_err(|e| crate::error::kafka("kafka.store.replies", e))?;
        consumer
            .assign(&list)
            .map_err(|e| crate::error::kafka("kafka.store.replies", e))?;
        let waiting: Waiting = Arc::default();
        let (closed, mine, waits) = (core.closed.clone(), member.to_string(), waiting.clone());
        tokio::spawn(async move {
            loop {
                let m = tokio::select! {
                    m = consumer.recv() => m,
                    () = closed.cancelled() => return,
                };
                let Ok(m) = m else {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                let headers = crate::headers::read(&m);
                let Some(reply) = Reply::decode(&headers) else {
                    continue;
                };
                if reply.to != mine {
                    continue;
                }
                let waiter = waits.lock().ok().and_then(|mut w| w.remove(&reply.rid));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(reply);
                }
            }
        });
        let seed = super::now_ms() ^ u64::from(std::process::id()).rotate_left(40);
        Ok(Remote {
            core: core.clone(),
            member: member.to_string(),
            reply_partition,
            next: AtomicU64::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            waiting,
        })
    }

    /// Sends `write` to the owner of partition `p` and waits for its answer.
    ///
    /// # Errors
    /// The owner's answer (a conflict, …); `Timeout` (retryable; the
    /// outcome is unknown) when no answer comes within the store's timeout.
    pub(crate) async fn call(&self, p: i32, write: Write) -> Result<Done> {
        const OP: &str = "kafka.store.forward";
        let rid = self.next.fetch_add(1, Ordering::Relaxed);
        let timeout = self.core.forward_timeout;
        let request = Request {
            write,
            rid,
            to: self.member.clone(),
            reply_partition: self.reply_partition,
            deadline_ms: super::now_ms().saturating_add(multiagents_core::scheduler::millis(timeout)),
        };
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(rid, tx);
        }
        let forgotten = || {
            if let Ok(mut w) = self.waiting.lock() {
                w.remove(&rid);
            }
        };
        let (key, value, headers) = request.encode();
        let owned = crate::headers::owned(&headers);
        let mut record: FutureRecord<'_, String, [u8]> = FutureRecord::to(&self.core.requests)
            .partition(p)
            .key(&key)
            .headers(owned);
        if let Some(v) = value.as_deref() {
            record = record.payload(v);
        }
        let sent = self
            .core
            .producer
            .send(|used| async move { used.send(record, timeout).await })
            .await;
        if let Err((e, _)) = sent {
            forgotten();
            return Err(crate::error::kafka(OP, e).with_context("key", key));
        }
        let reply = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(crate::error::closed(OP)),
            Err(_) => {
                forgotten();
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("kafka store: partition {p}'s owner did not answer within {timeout:?} (is an instance serving this store running?); the write may or may not be applied"),
                )
                .with_operation(OP)
                .with_context("key", key));
            }
        };
        let done = reply.result(&request.write)?;
        if done.offset >= 0
            && let Err(e) = self.core.progress.past(p, done.offset, timeout).await
        {
            // Applied (its owner said so); only this view lags.
            tracing::warn!(error = %e, partition = p, "kafka store: a forwarded write is applied but not read here yet");
        }
        Ok(done)
    }
}
